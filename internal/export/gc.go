package export

import "runtime/debug"

// BatchGC sets the garbage collector of a process that runs one batch
// command (eventmart export, import) to trade memory for CPU: it collects
// when the heap reaches limit instead of each time it doubles from the
// export's small live heap (a row group per worker and a read batch), which
// cost a quarter of the export's CPU. The heap stays under about limit
// while the live heap does; restore puts the previous settings back. Not
// for a server, whose memory other work shares.
func BatchGC(limit int64) (restore func()) {
	pct := debug.SetGCPercent(-1)
	old := debug.SetMemoryLimit(limit)
	return func() {
		debug.SetMemoryLimit(old)
		debug.SetGCPercent(pct)
	}
}

// BatchGCLimit is the heap limit BatchGC is given for an export of opts:
// 256 MiB beyond two row groups per worker.
func BatchGCLimit(rowGroupBytes int64, workers int) int64 {
	return 256<<20 + 2*rowGroupBytes*int64(workers)
}
