// SPDX-License-Identifier: MIT

package storage

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client performs Blob REST operations on URLs that carry their own
// authorization (a SAS query). The zero value uses http.DefaultClient.
type Client struct {
	HTTP *http.Client
}

// Error is a storage service's refusal: its HTTP status, its error code
// (x-ms-error-code, e.g. AuthenticationFailed, ContainerNotFound) and
// message.
type Error struct {
	Op         string // the operation, e.g. "put blob"
	StatusCode int
	Code       string
	Message    string
}

func (e *Error) Error() string {
	msg := e.Message
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i] // Azure adds RequestId and Time lines
	}
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("storage %s: %d %s: %s", e.Op, e.StatusCode, e.Code, strings.TrimSpace(msg))
}

// IsCode reports whether err is a storage Error with the given code.
func IsCode(err error, code string) bool {
	var se *Error
	return errors.As(err, &se) && se.Code == code
}

func (c *Client) httpClient() *http.Client {
	if c != nil && c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) do(ctx context.Context, op, method, u string, hdr http.Header, body io.Reader, size int64, want int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("storage %s: %w", op, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("x-ms-version", SASVersion)
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	if body != nil {
		req.ContentLength = size
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("storage %s: %w", op, redact(err))
	}
	if resp.StatusCode != want {
		defer resp.Body.Close()
		return nil, readError(op, resp)
	}
	return resp, nil
}

// redact removes the SAS from a URL error: the signature is a credential
// and errors end up in logs and job records.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			u.RawQuery = ""
			return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
		}
	}
	return err
}

func readError(op string, resp *http.Response) error {
	e := &Error{Op: op, StatusCode: resp.StatusCode, Code: resp.Header.Get("x-ms-error-code")}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var x struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	if xml.Unmarshal(b, &x) == nil {
		if e.Code == "" {
			e.Code = x.Code
		}
		e.Message = x.Message
	}
	return e
}

// PutBlob writes a block blob in one request (Put Blob). size is the exact
// length of body.
func (c *Client) PutBlob(ctx context.Context, blobURL string, body io.Reader, size int64, contentType string) error {
	h := http.Header{}
	h.Set("x-ms-blob-type", "BlockBlob")
	if contentType != "" {
		h.Set("x-ms-blob-content-type", contentType)
	}
	if size == 0 {
		body = http.NoBody
	}
	resp, err := c.do(ctx, "put blob", http.MethodPut, blobURL, h, body, size, http.StatusCreated)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// BlockID is the base64 block id of block n; all ids of a blob must have
// the same length.
func BlockID(n int) string {
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("block-%08d", n)))
}

// PutBlock stages one block of a block blob; it stays invisible until a Put
// Block List commits it.
func (c *Client) PutBlock(ctx context.Context, blobURL, blockID string, data []byte) error {
	u, err := withQuery(blobURL, "comp", "block", "blockid", blockID)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, "put block", http.MethodPut, u, nil, bytes.NewReader(data), int64(len(data)), http.StatusCreated)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// PutBlockList commits staged blocks, in order, as the blob's content.
func (c *Client) PutBlockList(ctx context.Context, blobURL string, blockIDs []string, contentType string) error {
	u, err := withQuery(blobURL, "comp", "blocklist")
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><BlockList>`)
	for _, id := range blockIDs {
		b.WriteString("<Latest>" + id + "</Latest>")
	}
	b.WriteString("</BlockList>")
	h := http.Header{}
	if contentType != "" {
		h.Set("x-ms-blob-content-type", contentType)
	}
	resp, err := c.do(ctx, "put block list", http.MethodPut, u, h, strings.NewReader(b.String()), int64(b.Len()), http.StatusCreated)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// GetBlob opens a blob's content; the caller closes it.
func (c *Client) GetBlob(ctx context.Context, blobURL string) (io.ReadCloser, error) {
	resp, err := c.do(ctx, "get blob", http.MethodGet, blobURL, nil, nil, 0, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Properties are the blob properties file-upload notifications report.
type Properties struct {
	Size         int64
	LastModified time.Time
	ETag         string
}

// GetProperties reads a blob's size and last-modified time (Get Blob
// Properties). A missing blob is an Error with status 404.
func (c *Client) GetProperties(ctx context.Context, blobURL string) (Properties, error) {
	resp, err := c.do(ctx, "get blob properties", http.MethodHead, blobURL, nil, nil, 0, http.StatusOK)
	if err != nil {
		// HEAD answers carry no body: name the usual codes ourselves.
		var se *Error
		if errors.As(err, &se) && se.Code == "" && se.StatusCode == http.StatusNotFound {
			se.Code = "BlobNotFound"
		}
		return Properties{}, err
	}
	resp.Body.Close()
	p := Properties{ETag: resp.Header.Get("ETag")}
	p.Size, _ = strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	p.LastModified, _ = http.ParseTime(resp.Header.Get("Last-Modified"))
	return p, nil
}

// CreateContainer creates a container; one that exists already is not an
// error.
func (c *Client) CreateContainer(ctx context.Context, containerURL string) error {
	u, err := withQuery(containerURL, "restype", "container")
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, "create container", http.MethodPut, u, nil, http.NoBody, 0, http.StatusCreated)
	if IsCode(err, "ContainerAlreadyExists") {
		return nil
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// withQuery adds name/value pairs to a URL's query, keeping what is there
// (the SAS).
func withQuery(raw string, kv ...string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("storage: bad URL: %w", err)
	}
	q := u.RawQuery
	for i := 0; i+1 < len(kv); i += 2 {
		if q != "" {
			q += "&"
		}
		q += url.QueryEscape(kv[i]) + "=" + url.QueryEscape(kv[i+1])
	}
	u.RawQuery = q
	return u.String(), nil
}

// ContainerBlobURL is the URL of a blob in a container given by a container
// URL that may carry a SAS query: the blob name goes into the path, the
// query stays.
func ContainerBlobURL(containerURL, blob string) (string, error) {
	u, err := url.Parse(containerURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) container URL", Redact(containerURL))
	}
	p := strings.TrimRight(u.EscapedPath(), "/")
	if p == "" {
		return "", fmt.Errorf("%q names no container", Redact(containerURL))
	}
	u2 := *u
	if err := setEscapedPath(&u2, p+"/"+EscapeBlobName(blob)); err != nil {
		return "", err
	}
	return u2.String(), nil
}

func setEscapedPath(u *url.URL, escaped string) error {
	p, err := url.PathUnescape(escaped)
	if err != nil {
		return err
	}
	u.Path, u.RawPath = p, escaped
	return nil
}

// Redact returns a URL without its query, for messages: a SAS is a
// credential.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}
