package plugin

import (
	"net/http"
	"strconv"
)

// Refusal codes, in New API's error "code" field; the ones admind gives too are in
// contract.go.
const (
	codeAmbiguousKey   = "ambiguous_api_key"
	codeMalformedKey   = "malformed_api_key"
	codeEncodedSlash   = "encoded_path_separator"
	codeBadClientIP    = "invalid_client_ip"
	codeClientHidden   = "client_address_hidden"
	codeMissingKey     = "missing_api_key"
	codeUnavailable    = "sentinel_unavailable"
	codeUndecided      = "request_not_decided"
	codeUnconfigured   = "sentinel_unconfigured"
	refusalContentType = "application/json; charset=utf-8"
)

// refusalBodies are prebuilt, constant bodies: nothing from the request (never the key) is
// echoed back, and nothing is encoded per request.
var refusalBodies = map[string][]byte{
	codeIPNotAllowed: refusalBody(codeIPNotAllowed, "this API key is bound to another client IP address"),
	codeKeyBanned:    refusalBody(codeKeyBanned, "this API key has been banned"),
	codeAmbiguousKey: refusalBody(codeAmbiguousKey, "the request carries more than one distinct API key"),
	codeMalformedKey: refusalBody(codeMalformedKey, "the API key is not in the form New API issues keys in"),
	codeEncodedSlash: refusalBody(codeEncodedSlash, "the path spells a separator as %2F or %5C"),
	codeBadClientIP:  refusalBody(codeBadClientIP, "the client IP address could not be determined"),
	codeClientHidden: refusalBody(codeClientHidden, "the request came through a relay that hides the client address; connect so that the client address is seen"),
	codeMissingKey:   refusalBody(codeMissingKey, "an API key is required"),
	codeUnavailable:  refusalBody(codeUnavailable, "the key check is temporarily unavailable, retry later"),
	codeUndecided:    refusalBody(codeUndecided, "the key check could not decide this request"),
	codeUnconfigured: refusalBody(codeUnconfigured, "the key check is not configured: its secrets are missing"),
	codeClaimLimited: refusalBody(codeClaimLimited, "too many new API keys from this address, retry later"),
}

func refusalBody(code, message string) []byte {
	return []byte(`{"error":{"message":"` + message + `","type":"sentinel_error","code":"` + code + `"}}`)
}

// refuseClaimLimited answers 429 with Retry-After: the client's address made its limit of
// new first-use claims (a flood of strings that are no keys looks like this).
func refuseClaimLimited(rw http.ResponseWriter, retryAfter int) {
	if retryAfter < 1 {
		retryAfter = 1
	}
	rw.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	refuse(rw, http.StatusTooManyRequests, codeClaimLimited)
}

// refuse answers in New API's error shape so SDKs show a readable message.
func refuse(rw http.ResponseWriter, status int, code string) {
	h := rw.Header()
	h.Set("Content-Type", refusalContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	rw.WriteHeader(status)
	_, _ = rw.Write(refusalBodies[code])
}
