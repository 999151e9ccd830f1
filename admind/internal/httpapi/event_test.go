package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
)

// FuzzDecodeEvent: the body of /internal/v1/decide and /intercepts. Whatever arrives, the
// decoder answers 400 or yields a checked event; it never panics.
func FuzzDecodeEvent(f *testing.F) {
	hash := strings.Repeat("0f", 32)
	f.Add(`{"key_hash":"`+hash+`","key_hint":"sk-abcd…wxyz","ip":"127.0.0.2","method":"POST","path":"/v1","user_agent":"x"}`, true)
	f.Add(`{"key_hash":"`+hash+`","ip":"::ffff:1.2.3.4","reason":"ip_not_allowed"}`, true)
	f.Add(`{"key_hash":"`+hash+`","ip":"2001:db8::1","reason":"key_banned","extra":1}`, false)
	f.Add(`[]`, false)
	f.Fuzz(func(t *testing.T, body string, needReason bool) {
		rw := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/internal/v1/intercepts", strings.NewReader(body))
		ev, ip, ok := decodeEvent(rw, req, needReason)
		if !ok {
			if rw.Code != http.StatusBadRequest {
				t.Fatalf("refused with %d", rw.Code)
			}
			return
		}
		if checked, err := ev.Check(needReason); err != nil || checked != ip || !contract.ValidKeyHash(ev.KeyHash) {
			t.Fatalf("accepted an invalid event %+v (%v)", ev, err)
		}
	})
}
