package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// decideRequest is the body of POST /internal/v1/decide, and of an intercept event.
type decideRequest struct {
	KeyHash string `json:"key_hash"`
	// LegacyKeyHash is the hash of the key as spelled, sent when that differs from KeyHash:
	// bindings made before the canonical key form are found under it.
	LegacyKeyHash string `json:"legacy_key_hash,omitempty"`
	KeyHint       string `json:"key_hint"`
	IP            string `json:"ip"`
	Method        string `json:"method"`
	Path          string `json:"path"`
	UserAgent     string `json:"user_agent"`
	Reason        string `json:"reason,omitempty"`
}

type decideResponse struct {
	Allow     bool          `json:"allow"`
	Reason    string        `json:"reason"`
	Binding   *bindingReply `json:"binding"`
	CacheTTLS int           `json:"cache_ttl_s"`
}

type bindingReply struct {
	Status string   `json:"status"`
	Mode   string   `json:"mode"`
	CIDRs  []string `json:"cidrs"`
}

// maxReportedField bounds what we copy from the request into events (paths, user agents).
const maxReportedField = 512

func newDecideRequest(req *http.Request, hash, hint string, ip netip.Addr) decideRequest {
	return decideRequest{
		KeyHash:   hash,
		KeyHint:   hint,
		IP:        ip.String(),
		Method:    truncate(req.Method),
		Path:      truncate(req.URL.Path),
		UserAgent: truncate(req.UserAgent()),
	}
}

func truncate(s string) string {
	if len(s) > maxReportedField {
		return s[:maxReportedField]
	}
	return s
}

type admindClient struct {
	http         *http.Client
	decideURL    string
	interceptURL string
	token        string
}

// admindIdleConns bounds the idle connections kept to admind.
const admindIdleConns = 16

func newAdmindHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy: nil,
			// A burst of misses (Redis down) may open many connections; keep few of them idle,
			// and not for long.
			MaxIdleConns:        admindIdleConns,
			MaxIdleConnsPerHost: admindIdleConns,
			IdleConnTimeout:     30 * time.Second,
		},
		// admind never redirects; following one could leak the internal token.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// decide asks admind, which owns PostgreSQL and creates first-use bindings.
func (a *admindClient) decide(dr decideRequest) (*decideResponse, error) {
	var out decideResponse
	if err := a.post(a.decideURL, dr, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// reportIntercept is the fallback when the event cannot go to the Redis stream.
func (a *admindClient) reportIntercept(dr decideRequest) error {
	return a.post(a.interceptURL, dr, nil)
}

var errAdmindStatus = errors.New("admind answered with an unexpected status")

func (a *admindClient) post(url string, body interface{}, out interface{}) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("admind: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%w: %s", errAdmindStatus, strconv.Itoa(resp.StatusCode))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(out)
}

// bindingFromReply converts admind's binding into the cached form; nil when admind sent none.
func bindingFromReply(r *bindingReply) (*binding, error) {
	if r == nil {
		return nil, nil
	}
	return parseBindingEntry("v1|" + r.Status + "|" + r.Mode + "|" + strings.Join(r.CIDRs, ","))
}
