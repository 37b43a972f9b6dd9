// SPDX-License-Identifier: MIT

package emulator

import "github.com/iothubemulator/iothub/emulator/internal/hub"

// OpCreateJob is scheduling a job (PUT /jobs/v2/{id}), for faults: a test
// can make it fail, for example with a 429 as a hub at its active-job
// limit answers.
const OpCreateJob Op = hub.OpCreateJob
