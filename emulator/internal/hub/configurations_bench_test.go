// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

// BenchmarkPatchReported measures a device's reported patch, the most
// frequent twin write, on a hub without configurations and on one with 10
// that target the device and 90 that do not: with configurations, every
// write re-evaluates the device's twins before it is answered. Compare the
// two ns/op figures of one run.
func BenchmarkPatchReported(b *testing.B) {
	for _, n := range []int{0, 100} {
		b.Run(fmt.Sprintf("configurations=%d", n), func(b *testing.B) {
			h := newBenchHub(b)
			ctx := context.Background()
			id := Identity{DeviceID: "dev"}
			if _, err := h.PutDevice(ctx, &Device{DeviceID: "dev"}, ""); err != nil {
				b.Fatal(err)
			}
			if _, err := h.UpdateTwin(ctx, id, []byte(`{"tags":{"site":"B7"}}`), "", false); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				cond := "tags.site = 'B8'"
				if i%10 == 0 {
					cond = "tags.site = 'B7' AND properties.reported.n >= 0"
				}
				in := &ConfigurationInput{ID: fmt.Sprintf("c%03d", i), TargetCondition: cond, Priority: i,
					Content: ConfigurationContent{DeviceContent: map[string]json.RawMessage{
						fmt.Sprintf("properties.desired.s%d", i%5): json.RawMessage(`{"v":1}`),
					}}}
				if _, err := h.PutConfiguration(ctx, in, ""); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := h.PatchReported(id, []byte(fmt.Sprintf(`{"n":%d}`, i)), 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
