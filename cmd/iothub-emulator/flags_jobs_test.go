// SPDX-License-Identifier: MIT

package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseFlagsMaxConcurrentJobs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"default: the S1 limit", nil, nil, 1},
		{"environment", nil, map[string]string{"IOTHUB_MAX_CONCURRENT_JOBS": "5"}, 5},
		{"flag wins", []string{"--max-concurrent-jobs", "10"}, map[string]string{"IOTHUB_MAX_CONCURRENT_JOBS": "5"}, 10},
	} {
		c, err := parseFlags(tc.args, env(tc.env), io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.opts.MaxConcurrentJobs != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, c.opts.MaxConcurrentJobs, tc.want)
		}
	}
	for _, bad := range []string{"0", "-1", "many"} {
		_, err := parseFlags([]string{"--max-concurrent-jobs", bad}, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--max-concurrent-jobs") {
			t.Errorf("--max-concurrent-jobs %s: got %v, want an error naming the flag", bad, err)
		}
	}
}
