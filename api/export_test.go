package api

// Routes returns the pattern ("METHOD /path") of every route New registers
// for o, in registration order.
func Routes(o Options) []string {
	h := &handler{Options: o}
	var out []string
	for _, rt := range h.routes() {
		out = append(out, rt.pattern)
	}
	return out
}
