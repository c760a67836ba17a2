package api

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"

	"github.com/customerthermometer/webhooks/shared/domain"
)

// Page sizes of the lists (API.md section 4).
const (
	defaultLimit = 20
	maxLimit     = 100
)

// listParams checks the query parameters of a list and returns its page
// size. limit and cursor are known to every list, filters names the list's
// own. Each parameter may be given once: with two, a cache or proxy in front
// of the API and this service could read different values. limit is plain
// decimal digits, so "+5" or " 5" is refused rather than read as 5.
func listParams(q url.Values, v *domain.ValidationError, filters ...string) int {
	// A known parameter given once with an empty value counts as not given,
	// as the contract writes the routes ("?endpoint_id=&status=&limit=").
	for k, vs := range q {
		if len(vs) == 1 && vs[0] == "" && (k == "limit" || k == "cursor" || slices.Contains(filters, k)) {
			delete(q, k)
		}
	}
	limit := defaultLimit
	if s := q.Get("limit"); q.Has("limit") && len(q["limit"]) == 1 {
		n, err := strconv.Atoi(s)
		if !decimal(s) || err != nil || n < 1 || n > maxLimit {
			v.Add("limit", "must be a whole number from 1 to %d", maxLimit)
		}
		limit = n
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		switch {
		case k != "limit" && k != "cursor" && !slices.Contains(filters, k):
			v.Add(k, "unknown query parameter")
		case len(q[k]) > 1:
			v.Add(k, "must be given once")
		}
	}
	return limit
}

// listQuery parses r's query string. Go's own parsing drops a pair it
// cannot read (one with a ";" or a bad percent escape) without a word, so a
// list asked for "?status=failed;" would come back unfiltered; here such a
// query string is refused instead.
func listQuery(r *http.Request, v *domain.ValidationError) url.Values {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		v.Add("query", "is malformed: give each parameter as name=value, percent-encoded, separated by &")
	}
	return q
}

// decimal reports whether s is one or more ASCII digits.
func decimal(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
