package inbox

// Queued returns how many batches wait for the transaction in progress.
func (c *Consumer) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// PruneChunk is how many records one statement of a prune deletes.
const PruneChunk = pruneChunk

// V7Floor is v7Floor.
var V7Floor = v7Floor
