// SPDX-License-Identifier: MIT

package main

import (
	"errors"

	"github.com/iothubemulator/iothub/internal/wire"
)

// explain adapts an operation's error for a user of this tool: a hub
// certificate that cannot be verified says which flag or variable to set,
// rather than the Go option the clients name.
func (c *cli) explain(err error) error {
	var ce *wire.CertificateError
	if errors.As(err, &ce) && !ce.Hostname {
		if f := c.caFilePath(); f != "" {
			ce.Option = "the CA file " + f + " (--ca-file or IOTHUB_CA_FILE) does not hold the CA that signed it; point it at this emulator's ca.pem"
		} else {
			ce.Option = "set IOTHUB_CA_FILE or pass --ca-file with its ca.pem"
		}
	}
	return err
}
