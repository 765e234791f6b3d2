package store

import "testing"

func BenchmarkSearchText(b *testing.B) {
	for _, body := range []string{`{"text":"hello, this is a benchmark message of a typical length"}`, `{"text":"你好世界，明天下午开会 Hello World"}`} {
		b.Run(body[9:14], func(b *testing.B) {
			for b.Loop() {
				SearchText("text", JSON(body))
			}
		})
	}
}

// The ASCII fast path folds as NFKC and case folding do.
func TestFoldASCII(t *testing.T) {
	var all []byte
	for c := 0; c < 0x80; c++ {
		all = append(all, byte(c))
	}
	for _, s := range []string{string(all), "Hello  World\n\tX", " A ", "", "MiXeD_Case-123!", "\x1c\x1d\x1e\x1f\x85"[:4]} {
		if fast, slow := FoldText(s), foldUnicode(s); fast != slow {
			t.Errorf("FoldText(%q) = %q, want %q", s, fast, slow)
		}
	}
	for in, want := range map[string]string{"Hello  World\n\tX": "hello world x", " A ": "a", "ＡＢＣ": "abc", "Straße": "strasse", "ﾃｽﾄ": "テスト"} {
		if got := FoldText(in); got != want {
			t.Errorf("FoldText(%q) = %q, want %q", in, got, want)
		}
	}
}
