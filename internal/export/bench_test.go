package export_test

import (
	"context"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/export"
	"github.com/eventmart/eventmart/internal/export/exporttest"
)

// BenchmarkExport measures exporting an embedded log of 81,600 events
// (14,000 orders) to Parquet and JSON Lines: events/s, events per CPU-second and the peak of the Go heap
// while exporting (sampled every 5ms), beside the heap before.
//
//	go test -run '^$' -bench Export -benchtime 3x ./internal/export/
//
// parquet-batch-gc is the Parquet export with the collector of the
// eventmart export command (BatchGC with BatchGCLimit: 288 MiB here).
func BenchmarkExport(b *testing.B) {
	for _, name := range []string{"parquet", "jsonl", "parquet-batch-gc"} {
		format, batchGC := strings.CutSuffix(name, "-batch-gc")
		b.Run(name, func(b *testing.B) {
			bb := exporttest.OpenBus(b)
			n := exporttest.Seed(b, bb, 14000, 500*time.Millisecond)
			sel := export.Selection{Topics: businessTopics}
			runtime.GC()
			base := heap()
			stop, peak := samplePeak()
			if batchGC {
				defer export.BatchGC(export.BatchGCLimit(16<<20, runtime.GOMAXPROCS(0)))()
			}
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				if _, err := export.Export(context.Background(), bb, export.Options{Dir: filepath.Join(b.TempDir(), "x"), Format: format, Selection: sel}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			stop()
			// The machine may be shared: events per second of CPU time says
			// what the export costs whatever else runs.
			b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "events/cpu-s")
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(*peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(base)/(1<<20), "base-heap-MiB")
		})
	}
}

// cpuTime is the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heap() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// samplePeak samples the heap until stop is called; *peak is its largest size.
func samplePeak() (stop func(), peak *uint64) {
	peak = new(uint64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			*peak = max(*peak, heap())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }, peak
}

// BenchmarkImport measures importing an export of 81,600 events into a
// fresh embedded log (fsynced batches of 2,000 per source partition).
//
//	go test -run '^$' -bench Import -benchtime 2x ./internal/export/
func BenchmarkImport(b *testing.B) {
	for _, format := range []string{"parquet", "jsonl"} {
		b.Run(format, func(b *testing.B) {
			src := exporttest.OpenBus(b)
			n := exporttest.Seed(b, src, 14000, 500*time.Millisecond)
			dir := filepath.Join(b.TempDir(), "x")
			if _, err := export.Export(context.Background(), src, export.Options{Dir: dir, Format: format, Selection: export.Selection{Topics: businessTopics}}); err != nil {
				b.Fatal(err)
			}
			var elapsed, cpu time.Duration
			for range b.N {
				dst := exporttest.OpenBus(b)
				start, cpu0 := time.Now(), cpuTime()
				res, err := export.Import(context.Background(), dst, export.ImportOptions{Dir: dir})
				if err != nil {
					b.Fatal(err)
				}
				elapsed, cpu = elapsed+time.Since(start), cpu+cpuTime()-cpu0
				if res.Records != int64(n) {
					b.Fatalf("imported %d of %d", res.Records, n)
				}
				dst.Close()
			}
			b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "events/cpu-s")
		})
	}
}
