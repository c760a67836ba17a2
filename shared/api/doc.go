// Package api is the management API (API.md section 4) as a plain net/http
// handler. The API function serves it behind API Gateway through a small event
// adapter; tests serve it with httptest. Errors leave through one function that
// maps domain codes to HTTP statuses and never shows internal causes.
package api
