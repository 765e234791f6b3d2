// Package schema embeds mqim's forward-only SQL migrations, one folder per
// dialect. A migration file is named NNNN_name.sql; its statements are
// separated by lines that end with ";". Files are never edited once released:
// a change is a new file.
package schema

import "embed"

// FS holds sqlite/*.sql and mysql/*.sql.
//
//go:embed sqlite/*.sql mysql/*.sql
var FS embed.FS
