package broker

// shardCounts returns the number of connections in each shard, in shard
// order: the status page shows it as per-shard load. Each shard is read
// under its read lock, one at a time, so the counts are not one atomic
// snapshot of the table (their sum can differ briefly from hub.count).
func (h *hub) shardCounts() []int {
	out := make([]int, len(h.shards))
	for i, s := range h.shards {
		s.mu.RLock()
		out[i] = len(s.conns)
		s.mu.RUnlock()
	}
	return out
}
