// SPDX-License-Identifier: MIT

// Command benchsystem measures the emulator from outside, as its own
// process, against what it is built on, each baseline measured in the same
// run: a bbolt scan, a raw bbolt Batch, bare mochi and a bare HTTPS server
// (each in a process of its own). Runs of the baseline and of the emulator
// alternate, and the report gives medians, ranges and the ratio of the
// medians, with the load average. `make bench-system` runs it:
//
//	go run ./scripts/benchsystem [-only query,writes,telemetry,memory,methods] [-rounds 5]
//
// The machine is shared and noisy: compare ratios, not absolute figures.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		var err error
		switch os.Args[1] {
		case "serve-mochi":
			err = serveMochi(os.Args[2:])
		case "serve-https":
			err = serveHTTPS(os.Args[2:])
		default:
			err = run(os.Args[1:])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchsystem:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(nil); err != nil {
		fmt.Fprintln(os.Stderr, "benchsystem:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	only       map[string]bool
	rounds     int
	dir        string
	emulator   string // emulator binary
	self       string // this binary, for the baseline servers
	twins      int
	idle       int
	methodDevs int
	seconds    time.Duration
	profileDir string
	jsonOut    string
}

func (c *config) want(name string) bool { return len(c.only) == 0 || c.only[name] }

func run(args []string) error {
	fs := flag.NewFlagSet("benchsystem", flag.ContinueOnError)
	only := fs.String("only", "", "comma-separated figures: query, writes, telemetry, memory, methods (default all)")
	c := &config{}
	fs.IntVar(&c.rounds, "rounds", 5, "alternating baseline/emulator rounds per figure")
	fs.StringVar(&c.dir, "dir", "", "work directory (default a new temporary one, removed at the end)")
	fs.StringVar(&c.emulator, "emulator", "", "emulator binary (default: built from this checkout)")
	fs.IntVar(&c.twins, "twins", 100000, "twins for the query figure")
	fs.IntVar(&c.idle, "idle", 2000, "idle devices for the memory figure")
	fs.IntVar(&c.methodDevs, "method-devices", 1000, "connected devices for the method figure")
	fs.DurationVar(&c.seconds, "duration", 5*time.Second, "length of each throughput round")
	fs.StringVar(&c.profileDir, "profile", "", "write a CPU profile of the emulator per figure into this directory")
	fs.StringVar(&c.jsonOut, "json", "", "also write the raw figures as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *only != "" {
		c.only = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			c.only[strings.TrimSpace(s)] = true
		}
	}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "benchsystem-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		c.dir = d
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	c.self = self
	if c.emulator == "" {
		c.emulator = filepath.Join(c.dir, "iothub-emulator")
		fmt.Fprintln(os.Stderr, "building the emulator...")
		build := exec.Command("go", "build", "-o", c.emulator, "./cmd/iothub-emulator")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	if c.profileDir != "" {
		if err := os.MkdirAll(c.profileDir, 0o755); err != nil {
			return err
		}
	}
	ctx := context.Background()
	var results []*figure
	steps := []struct {
		name string
		fn   func(context.Context, *config) ([]*figure, error)
	}{
		{"query", queryFigure},
		{"writes", writesFigure},
		{"telemetry", telemetryFigure},
		{"memory", memoryFigure},
		{"methods", methodsFigure},
	}
	for _, s := range steps {
		if !c.want(s.name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s (load average %s)\n", s.name, loadAvg())
		figs, err := s.fn(ctx, c)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		for _, f := range figs {
			fmt.Fprintln(os.Stderr, f.line())
		}
		results = append(results, figs...)
	}
	fmt.Println(table(results))
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(c.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// figure is one measured figure: the emulator's rounds and the baseline's,
// taken alternately.
type figure struct {
	Name     string    `json:"name"`
	Unit     string    `json:"unit"`
	Emulator []float64 `json:"emulator"`
	Baseline []float64 `json:"baseline"`
	Base     string    `json:"baselineName"`
	// Ratio says how the ratio is formed: "base/emu" for times (a ratio
	// of 1 is storage speed), "emu/base" for rates, and for latencies
	// emu/base too (lower is better).
	Ratio string   `json:"ratio"`
	Aim   string   `json:"aim"`
	Load  []string `json:"loadAverage"`
	Note  string   `json:"note,omitempty"`
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (f *figure) ratio() float64 {
	e, b := median(f.Emulator), median(f.Baseline)
	if e == 0 || b == 0 {
		return 0
	}
	if f.Ratio == "base/emu" {
		return b / e
	}
	return e / b
}

// ratioRange is the smallest and largest ratio of one round's pair.
func (f *figure) ratioRange() (float64, float64) {
	lo, hi := 0.0, 0.0
	for i := range min(len(f.Emulator), len(f.Baseline)) {
		e, b := f.Emulator[i], f.Baseline[i]
		if e == 0 || b == 0 {
			continue
		}
		r := e / b
		if f.Ratio == "base/emu" {
			r = b / e
		}
		if lo == 0 || r < lo {
			lo = r
		}
		if r > hi {
			hi = r
		}
	}
	return lo, hi
}

func span(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%s–%s)", num(median(xs)), num(slices.Min(xs)), num(slices.Max(xs)))
}

func num(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func (f *figure) line() string {
	lo, hi := f.ratioRange()
	return fmt.Sprintf("%s: emulator %s %s, %s %s, ratio %.2fx (%.2f–%.2f), aim %s, load %s %s",
		f.Name, span(f.Emulator), f.Unit, f.Base, span(f.Baseline), f.ratio(), lo, hi, f.Aim, strings.Join(f.Load, " / "), f.Note)
}

func table(figs []*figure) string {
	var b strings.Builder
	b.WriteString("| figure | emulator, median (range) | baseline in the same run | ratio (range) | aim | load average |\n|---|---|---|---|---|---|\n")
	for _, f := range figs {
		lo, hi := f.ratioRange()
		ratio := fmt.Sprintf("%.2fx (%.2f–%.2f)", f.ratio(), lo, hi)
		if len(f.Baseline) == 0 {
			ratio = "-"
		}
		base := f.Base
		if len(f.Baseline) > 0 {
			base += ": " + span(f.Baseline) + " " + f.Unit
		}
		fmt.Fprintf(&b, "| %s | %s %s | %s | %s | %s | %s |\n", f.Name, span(f.Emulator), f.Unit, base, ratio, f.Aim, strings.Join(f.Load, ", "))
		if f.Note != "" {
			fmt.Fprintf(&b, "|  | %s | | | | |\n", f.Note)
		}
	}
	return b.String()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
