// Package identity is what identifies a request to Sentinel, computed the same way by the
// plugin and by admind: the API key's canonical form, its HMAC hash and display hint, and the
// client's address behind trusted proxies.
//
// It is part of the plugin, so it lives within the plugin's limits: standard library only, Go
// 1.22 API, nothing Yaegi v0.16.1 cannot run (docs/architecture.md, "Living inside Yaegi").
// admind imports it so that a key an admin pastes hashes exactly as the plugin hashes it, and
// an admin client's address is resolved exactly as a request's is.
package identity
