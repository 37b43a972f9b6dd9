// SPDX-License-Identifier: MIT

package device

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/internal/storage"
	"github.com/iothubemulator/iothub/internal/wire"
)

// File upload (iot-hub-devguide-file-upload) goes over HTTPS whatever the
// transport, as in every official SDK: the client asks the hub for a SAS
// URI for a blob, writes the blob straight to Azure Storage, and tells the
// hub how the upload went. The blob never passes through the hub.

// StorageInfo is the hub's answer to an upload request: where to write the
// blob and the correlation id to report the outcome with.
type StorageInfo struct {
	CorrelationID string `json:"correlationId"`
	HostName      string `json:"hostName"`      // storage host (Azurite's carries a port and the account path)
	ContainerName string `json:"containerName"` // the hub's upload container
	BlobName      string `json:"blobName"`      // {deviceId}/{the name asked for}
	SASToken      string `json:"sasToken"`      // query string with a leading '?'
}

// BlobURL is the SAS URI of the blob:
// https://{hostName}/{containerName}/{blobName}{sasToken}.
func (s *StorageInfo) BlobURL() string {
	return "https://" + s.HostName + "/" + storage.EscapeBlobName(s.ContainerName) + "/" +
		storage.EscapeBlobName(s.BlobName) + s.SASToken
}

// StorageError is Azure Storage refusing a blob write: its HTTP status and
// error code (e.g. 403 AuthenticationFailed, 404 ContainerNotFound).
type StorageError struct {
	StatusCode int
	Code       string
	Message    string
}

func (e *StorageError) Error() string {
	return fmt.Sprintf("device: storage answered %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// WithHTTPSHost sets where the client's HTTPS requests to the hub (file
// upload) go, as host[:port]. The default is the hub's host name on port
// 443, which is right for a real hub and for the emulator on its default
// ports; an emulator on other ports needs its HTTPS address here
// (emulator.Server.HTTPSHost in tests).
func WithHTTPSHost(hostport string) Option {
	return func(s *settings) error {
		if hostport == "" {
			return errors.New("device: empty HTTPS host")
		}
		s.httpsHost = hostport
		return nil
	}
}

// WithStorageHTTPClient sets the HTTP client blob writes go through (proxy,
// trust, timeouts). The default trusts the pool given with WithRootCAs or
// WithCAFile, else the system roots: a storage emulator whose certificate
// the hub's CA signed needs nothing more.
func WithStorageHTTPClient(hc *http.Client) Option {
	return func(s *settings) error {
		s.storageHTTP = hc
		return nil
	}
}

// hubHTTPS returns the base URL and an HTTP client for the hub's HTTPS API.
func (c *Client) hubHTTPS() (string, *http.Client) {
	c.httpsOnce.Do(func() {
		host := c.set.httpsHost
		if host == "" {
			h, _ := splitPort(c.id.netHost)
			host = net.JoinHostPort(trimBrackets(h), "443")
			if c.set.webSockets {
				// MQTT over WebSockets shares the hub's HTTPS port.
				host, _ = c.id.address(true)
			}
		}
		cfg := &tls.Config{RootCAs: c.set.rootCAs, MinVersion: tls.VersionTLS12}
		if c.set.cert != nil {
			cfg.Certificates = []tls.Certificate{*c.set.cert}
		}
		c.httpsBase = "https://" + host
		c.httpsClient = &http.Client{Timeout: c.set.opTimeout, Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, TLSClientConfig: cfg, IdleConnTimeout: 30 * time.Second}}
	})
	return c.httpsBase, c.httpsClient
}

func (c *Client) storageHTTP() *http.Client {
	if c.set.storageHTTP != nil {
		return c.set.storageHTTP
	}
	roots := c.set.rootCAs // nil: the system roots
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
}

// hubCall sends one JSON request to the hub's device HTTPS API and decodes
// a 2xx answer into out (nil: no body expected). It repeats the request on
// throttling, server errors and network failures while the retry policy
// allows and the operation timeout lasts.
func (c *Client) hubCall(ctx context.Context, op, path string, in, out any) error {
	if c.id.moduleID != "" {
		return &Error{Op: op, StatusCode: http.StatusBadRequest, Message: "file upload is for devices; the hub offers modules none"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.set.opTimeout)
	defer cancel()
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	base, hc := c.hubHTTPS()
	u := base + "/devices/" + wire.Escape(c.id.deviceID) + path + "?api-version=" + wire.APIVersion
	for failures := 0; ; {
		err := c.hubRequest(ctx, hc, op, u, body, out)
		if err == nil || !retryableHTTP(err) {
			return err
		}
		failures++
		d, ok := c.set.retry.Delay(failures, err)
		if !ok {
			return err
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("device: %s: %w (last error: %v)", op, ErrTimeout, err)
			}
			return fmt.Errorf("device: %s: %w", op, ctx.Err())
		}
	}
}

func retryableHTTP(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusServiceUnavailable ||
			e.StatusCode == http.StatusInternalServerError
	}
	var ne net.Error
	return errors.As(err, &ne) && !ne.Timeout()
}

func (c *Client) hubRequest(ctx context.Context, hc *http.Client, op, u string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent(c.set.productInfo))
	tok, _, err := c.cred.password(c.id, c.set.tokenLifetime, time.Now())
	if err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	if tok != "" {
		req.Header.Set("Authorization", tok)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("device: %s: %w", op, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, wire.MaxErrorBody))
	if resp.StatusCode/100 != 2 {
		h := wire.ParseError(resp.StatusCode, resp.Header, b)
		return &Error{Op: op, StatusCode: h.StatusCode, Code: h.Code, CodeName: h.CodeName, Message: h.Message,
			TrackingID: h.TrackingID, Info: h.Info, Body: h.Body}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("device: %s: the hub's answer is not JSON: %w", op, err)
	}
	return nil
}

// GetStorageInfoForBlob asks the hub for a SAS URI to upload blobName (POST
// /devices/{id}/files). The hub allows ten uploads per device that are
// neither notified nor expired (403006, ErrForbidden).
func (c *Client) GetStorageInfoForBlob(ctx context.Context, blobName string) (*StorageInfo, error) {
	var info StorageInfo
	if err := c.hubCall(ctx, "GetStorageInfoForBlob", "/files", map[string]string{"blobName": blobName}, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// NotifyBlobUploadStatus tells the hub how an upload ended (POST
// /devices/{id}/files/notifications). A success makes the hub send the back
// end a file-upload notification, when the hub has them on.
func (c *Client) NotifyBlobUploadStatus(ctx context.Context, correlationID string, isSuccess bool, statusCode int, statusDescription string) error {
	body := map[string]any{"correlationId": correlationID, "isSuccess": isSuccess,
		"statusCode": statusCode, "statusDescription": statusDescription}
	return c.hubCall(ctx, "NotifyBlobUploadStatus", "/files/notifications", body, nil)
}

// uploadBlock is the block size of uploads of unknown length.
const uploadBlock = 4 << 20

// UploadToBlob uploads r as blobName in three steps, like the official
// SDKs' uploadToBlob: it gets a SAS URI from the hub, writes the blob to
// Azure Storage, and notifies the hub of the outcome, failure included.
// size is r's length, or -1 when unknown (the blob is then written in 4 MiB
// blocks). A storage refusal is a *StorageError; the hub's are *Error.
func (c *Client) UploadToBlob(ctx context.Context, blobName string, r io.Reader, size int64) error {
	info, err := c.GetStorageInfoForBlob(ctx, blobName)
	if err != nil {
		return err
	}
	upErr := c.writeBlob(ctx, info.BlobURL(), r, size)
	status, desc := http.StatusCreated, "uploaded"
	if upErr != nil {
		status, desc = http.StatusInternalServerError, upErr.Error()
		var se *StorageError
		if errors.As(upErr, &se) {
			status = se.StatusCode
		}
	}
	// Notify even when the context ended: the hub frees the upload early.
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.set.opTimeout)
	defer cancel()
	nerr := c.NotifyBlobUploadStatus(nctx, info.CorrelationID, upErr == nil, status, desc)
	if upErr != nil {
		if nerr != nil {
			return fmt.Errorf("device: UploadToBlob: %w (and the hub was not notified: %v)", upErr, nerr)
		}
		return fmt.Errorf("device: UploadToBlob: %w", upErr)
	}
	return nerr
}

func (c *Client) writeBlob(ctx context.Context, blobURL string, r io.Reader, size int64) error {
	sc := &storage.Client{HTTP: c.storageHTTP()}
	var err error
	if size >= 0 {
		err = sc.PutBlob(ctx, blobURL, io.LimitReader(r, size), size, "")
	} else {
		err = c.writeBlocks(ctx, sc, blobURL, r)
	}
	var se *storage.Error
	if errors.As(err, &se) {
		msg := se.Message
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		return &StorageError{StatusCode: se.StatusCode, Code: se.Code, Message: strings.TrimSpace(msg)}
	}
	return err
}

func (c *Client) writeBlocks(ctx context.Context, sc *storage.Client, blobURL string, r io.Reader) error {
	buf := make([]byte, uploadBlock)
	var ids []string
	for i := 0; ; i++ {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			id := storage.BlockID(i)
			if err := sc.PutBlock(ctx, blobURL, id, buf[:n]); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read the upload: %w", rerr)
		}
	}
	return sc.PutBlockList(ctx, blobURL, ids, "")
}
