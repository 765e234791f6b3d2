-- Which node serves a persistent session, and since when (docs/cluster.md).
-- node is the cluster.node_id of the node its current (or last) connection
-- reached ('' on a node alone); connected_at is when that connection began
-- (Unix ms). A disconnect is recorded only by the connection that still
-- owns the row, so a device that moved to another node is never marked
-- disconnected by the node it left, and the nodes that outlive a crashed
-- one mark its sessions disconnected, so that they expire.
ALTER TABLE mqtt_sessions ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE mqtt_sessions ADD COLUMN connected_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS mqtt_sessions_node ON mqtt_sessions (node, disconnected_at);
