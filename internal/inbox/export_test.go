package inbox

// Queued returns how many batches wait for the transaction in progress.
func (c *Consumer) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}
