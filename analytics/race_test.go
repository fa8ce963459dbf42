//go:build race

package analytics_test

func init() { raceDetector = true }
