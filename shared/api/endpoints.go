package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/customerthermometer/webhooks/shared/dispatch"
	"github.com/customerthermometer/webhooks/shared/domain"
	"github.com/customerthermometer/webhooks/shared/ids"
	"github.com/customerthermometer/webhooks/shared/payload"
	"github.com/customerthermometer/webhooks/shared/signature"
	"github.com/customerthermometer/webhooks/shared/store"
	"github.com/customerthermometer/webhooks/shared/target"
)

// newSecret returns 64 lowercase hex characters from crypto/rand.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails on supported platforms (crypto/rand docs)
	return hex.EncodeToString(b)
}

// endpointInput is a decoded create or update body; nil means absent.
type endpointInput struct {
	name, url    *string
	triggers     *[]string
	basicAuthSet bool // basic_auth present (null removes)
	basicAuth    *basicAuthInput
	enabled      *bool
}

type basicAuthInput struct{ username, password string }

// decodeEndpoint reads and validates an endpoint body. create requires name,
// url and triggers; an update needs at least one field.
func (h *handler) decodeEndpoint(r *http.Request, create bool) (endpointInput, error) {
	o, err := readObject(r, false)
	if err != nil {
		return endpointInput{}, err
	}
	var in endpointInput
	var v domain.ValidationError
	o.unknown(&v, "name", "url", "triggers", "basic_auth", "enabled")
	var name, url string
	var triggers []string
	var enabled bool
	if ok, err := o.str("name", &name); err != nil {
		return in, err
	} else if ok {
		in.name = &name
	}
	if ok, err := o.str("url", &url); err != nil {
		return in, err
	} else if ok {
		in.url = &url
	}
	if ok, err := o.strings("triggers", &triggers); err != nil {
		return in, err
	} else if ok {
		in.triggers = &triggers
	}
	if ok, err := o.boolean("enabled", &enabled); err != nil {
		return in, err
	} else if ok {
		in.enabled = &enabled
	}
	ba, present, err := o.obj("basic_auth", true)
	if err != nil {
		return in, err
	}
	in.basicAuthSet = present
	if ba != nil {
		ba.unknown(&v, "username", "password")
		var bi basicAuthInput
		uok, err := ba.str("username", &bi.username)
		if err != nil {
			return in, err
		}
		pok, err := ba.str("password", &bi.password)
		if err != nil {
			return in, err
		}
		if !uok {
			v.Add("basic_auth.username", "is required")
		} else if msg := domain.CheckUsername(bi.username); msg != "" {
			v.Add("basic_auth.username", "%s", msg)
		}
		if !pok {
			v.Add("basic_auth.password", "is required")
		} else if msg := domain.CheckPassword(bi.password); msg != "" {
			v.Add("basic_auth.password", "%s", msg)
		}
		in.basicAuth = &bi
	}

	if create {
		for _, f := range []struct {
			name    string
			present bool
		}{{"name", in.name != nil}, {"url", in.url != nil}, {"triggers", in.triggers != nil}} {
			if !f.present {
				v.Add(f.name, "is required")
			}
		}
	} else if len(o.fields) == 0 {
		v.Add("body", "must set at least one of name, url, triggers, basic_auth, enabled")
	}
	if in.name != nil {
		if msg := domain.CheckName(*in.name); msg != "" {
			v.Add("name", "%s", msg)
		}
	}
	if in.url != nil {
		problems := target.CheckURL(*in.url, h.LocalMode)
		for _, msg := range problems {
			v.Add("url", "%s", msg)
		}
		if msg := domain.CheckHidden(*in.url); msg != "" && len(problems) == 0 {
			v.Add("url", "%s", msg)
		}
	}
	if in.triggers != nil {
		domain.CheckTriggers(&v, *in.triggers)
	}
	return in, v.Err()
}

func (h *handler) createEndpoint(w http.ResponseWriter, r *http.Request, account string) {
	in, err := h.decodeEndpoint(r, true)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	now := h.Now().UTC()
	e := domain.Endpoint{
		ID: ids.New("ep", now), AccountID: account, Name: *in.name, URL: *in.url, Triggers: *in.triggers,
		Enabled: true, CreatedAt: now, UpdatedAt: now, Thermometers: []domain.Thermometer{},
	}
	if in.enabled != nil {
		e.Enabled = *in.enabled
	}
	secret := newSecret()
	if e.Secret, err = h.Secrets.Seal(r.Context(), []byte(secret), domain.SealContext(account, e.ID, domain.PurposeSecret)); err != nil {
		h.writeError(w, r, err)
		return
	}
	if in.basicAuth != nil {
		if e.BasicAuth, err = h.sealBasicAuth(r.Context(), e, in.basicAuth); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	if err := h.Endpoints.CreateEndpoint(r.Context(), e); err != nil {
		h.writeError(w, r, err)
		return
	}
	e.Version++
	h.log(r, "endpoint created", e.ID)
	w.Header().Set("Location", "/v1/endpoints/"+e.ID)
	writeJSON(w, http.StatusCreated, endpointView(e, secret))
}

func (h *handler) sealBasicAuth(ctx context.Context, e domain.Endpoint, in *basicAuthInput) (*domain.BasicAuth, error) {
	sealed, err := h.Secrets.Seal(ctx, []byte(in.password), domain.SealContext(e.AccountID, e.ID, domain.PurposePassword))
	if err != nil {
		return nil, err
	}
	return &domain.BasicAuth{Username: in.username, Password: sealed}, nil
}

func (h *handler) listEndpoints(w http.ResponseWriter, r *http.Request, account string) {
	var v domain.ValidationError
	q := listQuery(r, &v)
	limit := listParams(q, &v)
	if err := v.Err(); err != nil {
		h.writeError(w, r, err)
		return
	}
	scope := account + "/endpoints"
	after := ""
	if q.Has("cursor") {
		pos, err := h.Cursors.Open(scope, q.Get("cursor"))
		if err != nil || !ids.ValidEndpointID(string(pos)) {
			h.writeError(w, r, domain.Errorf(domain.CodeInvalidCursor, "cursor was not issued by this service for this list"))
			return
		}
		after = string(pos)
	}
	eps, more, err := h.Endpoints.ListEndpoints(r.Context(), account, limit, after)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// Each endpoint is encoded once, so the page can end by size.
	out := listJSON[json.RawMessage]{Data: make([]json.RawMessage, 0, len(eps))}
	size := 0
	for i, e := range eps {
		view, err := encode(endpointView(e, ""))
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if size += len(view); size > maxPageBytes && i > 0 {
			// The page ends here; the cursor continues from the last
			// endpoint shown.
			eps, more = eps[:i], true
			break
		}
		out.Data = append(out.Data, view)
	}
	if more && len(eps) > 0 {
		c := h.Cursors.Seal(scope, []byte(eps[len(eps)-1].ID))
		out.NextCursor = &c
	}
	writeJSON(w, http.StatusOK, out)
}

// maxPageBytes bounds the JSON of a page of endpoints. An endpoint can link
// 100 thermometers with 200-character names, about 150 KB of JSON, and
// Lambda returns at most 6 MB, in which the body is a JSON string that can
// take up to twice its own size. Ordinary endpoints (about 1 KB each) fill
// a page of 100 long before this.
const maxPageBytes = 2560 << 10

// endpoint reads the {id} of the request for account: malformed ids are
// not_found like unknown ones, without a table read.
func (h *handler) endpoint(r *http.Request, account string) (domain.Endpoint, error) {
	id := r.PathValue("id")
	if !ids.ValidEndpointID(id) {
		return domain.Endpoint{}, domain.Errorf(domain.CodeNotFound, "endpoint %s not found", truncate(id, 64))
	}
	return h.Endpoints.GetEndpoint(r.Context(), account, id)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (h *handler) getEndpoint(w http.ResponseWriter, r *http.Request, account string) {
	e, err := h.endpoint(r, account)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	secret, err := h.openSecret(r, e)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, endpointView(e, secret))
}

// openSecret decrypts e's shared secret.
func (h *handler) openSecret(r *http.Request, e domain.Endpoint) (string, error) {
	secret, err := h.Secrets.Open(r.Context(), e.Secret, domain.SealContext(e.AccountID, e.ID, domain.PurposeSecret))
	if err != nil {
		return "", fmt.Errorf("open secret of %s: %w", e.ID, err)
	}
	return string(secret), nil
}

// busy makes a write that kept meeting other requests' changes, whatever
// the rereads and retries, a 503 to retry later rather than a 500.
func busy(err error) error { return fmt.Errorf("%w (%w)", err, domain.ErrUnavailable) }

// modify applies change to account's endpoint {id} and saves it, reading
// again and reapplying when another request changed it meanwhile.
func (h *handler) modify(r *http.Request, account string, change func(e *domain.Endpoint) error) (domain.Endpoint, error) {
	for attempt := 0; ; attempt++ {
		e, err := h.endpoint(r, account)
		if err != nil {
			return e, err
		}
		previous := e.Thermometers
		if err := change(&e); err != nil {
			return e, err
		}
		e.UpdatedAt = h.Now().UTC()
		err = h.Endpoints.SaveEndpoint(r.Context(), e, previous)
		if errors.Is(err, store.ErrConflict) && attempt < 4 {
			continue
		}
		if errors.Is(err, store.ErrConflict) {
			return e, busy(err)
		}
		if err != nil {
			return e, err
		}
		e.Version++
		return e, nil
	}
}

func (h *handler) updateEndpoint(w http.ResponseWriter, r *http.Request, account string) {
	in, err := h.decodeEndpoint(r, false)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	e, err := h.modify(r, account, func(e *domain.Endpoint) error {
		if in.name != nil {
			e.Name = *in.name
		}
		if in.url != nil && *in.url != e.URL {
			e.URL, e.Tested = *in.url, false
		}
		if in.triggers != nil {
			e.Triggers = *in.triggers
		}
		if in.enabled != nil {
			e.Enabled = *in.enabled
			if e.Enabled {
				e.Gone = false
			}
		}
		switch {
		case in.basicAuth != nil:
			// New credentials need a new test, whatever they are: the stored
			// password is sealed and cannot be compared with them.
			ba, err := h.sealBasicAuth(r.Context(), *e, in.basicAuth)
			if err != nil {
				return err
			}
			e.Tested, e.BasicAuth = false, ba
		case in.basicAuthSet && e.BasicAuth != nil:
			// null removes the credentials; on an endpoint without any it
			// changes nothing, and the status stays.
			e.Tested, e.BasicAuth = false, nil
		}
		return nil
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.log(r, "endpoint updated", e.ID)
	writeJSON(w, http.StatusOK, endpointView(e, ""))
}

func (h *handler) deleteEndpoint(w http.ResponseWriter, r *http.Request, account string) {
	for attempt := 0; ; attempt++ {
		e, err := h.endpoint(r, account)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		err = h.Endpoints.DeleteEndpoint(r.Context(), e)
		if errors.Is(err, store.ErrConflict) && attempt < 4 {
			continue
		}
		if errors.Is(err, store.ErrConflict) {
			err = busy(err)
		}
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		h.log(r, "endpoint deleted", e.ID)
		w.WriteHeader(http.StatusNoContent)
		return
	}
}

func (h *handler) rotateSecret(w http.ResponseWriter, r *http.Request, account string) {
	if err := h.noBody(r); err != nil {
		h.writeError(w, r, err)
		return
	}
	secret := newSecret()
	e, err := h.modify(r, account, func(e *domain.Endpoint) error {
		sealed, err := h.Secrets.Seal(r.Context(), []byte(secret), domain.SealContext(account, e.ID, domain.PurposeSecret))
		e.Secret = sealed
		return err
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.log(r, "endpoint secret rotated", e.ID)
	writeJSON(w, http.StatusOK, endpointView(e, secret))
}

// noBody accepts an empty body or an empty JSON object.
func (h *handler) noBody(r *http.Request) error {
	o, err := readObject(r, true)
	if err != nil {
		return err
	}
	var v domain.ValidationError
	o.unknown(&v)
	return v.Err()
}

type testResultJSON struct {
	Delivered  bool    `json:"delivered"`
	StatusCode *int    `json:"status_code"`
	LatencyMS  int64   `json:"latency_ms"`
	Error      *string `json:"error"`
	DeliveryID string  `json:"delivery_id"`
}

// testEndpoint sends a signed test webhook synchronously with the same code
// deliveries use, records it as last_test and, when delivered, makes the
// endpoint active; a 410 disables it, as a delivery's does. Any other
// failure leaves its status as it was: failing follows deliveries.
func (h *handler) testEndpoint(w http.ResponseWriter, r *http.Request, account string) {
	if err := h.noBody(r); err != nil {
		h.writeError(w, r, err)
		return
	}
	e, err := h.endpoint(r, account)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if h.sendLimited(w, r, account) {
		return
	}
	secret, err := h.openSecret(r, e)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	hook := dispatch.Webhook{URL: e.URL, Secret: secret, EndpointID: e.ID, Event: "test", Attempt: 1}
	if e.BasicAuth != nil {
		pw, err := h.Secrets.Open(r.Context(), e.BasicAuth.Password, domain.SealContext(account, e.ID, domain.PurposePassword))
		if err != nil {
			h.writeError(w, r, fmt.Errorf("open password of %s: %w", e.ID, err))
			return
		}
		hook.BasicAuth = &dispatch.BasicAuth{Username: e.BasicAuth.Username, Password: string(pw)}
	}
	now := h.Now().UTC()
	hook.DeliveryID = ids.New("dlv", now)
	hook.Body = payload.Test(e, hook.DeliveryID, now)
	res := h.Sender.Send(r.Context(), hook)

	last := &domain.LastTest{At: now, Delivered: res.Delivered(), StatusCode: res.StatusCode, LatencyMS: res.Latency.Milliseconds()}
	if res.Err != nil {
		last.Error = res.Err.Error()
	}
	if err := h.logTest(r, e, hook, res, last); err != nil {
		h.writeError(w, r, err)
		return
	}
	tested := e
	_, err = h.modify(r, account, func(cur *domain.Endpoint) error {
		cur.LastTest = last
		// The result counts only for the target it was sent to: if the URL
		// or credentials changed meanwhile, the endpoint stays untested.
		sameTarget := cur.URL == tested.URL && sameBasicAuth(cur.BasicAuth, tested.BasicAuth)
		switch {
		case res.Delivered() && sameTarget:
			cur.Tested, cur.Failing = true, false
		case res.Gone() && cur.URL == tested.URL && cur.Enabled:
			// A 410 disables its endpoint, from a test fire as from a
			// delivery (API.md section 3): the receiver says it is gone.
			cur.Enabled, cur.Gone = false, true
		}
		return nil
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.Logger.LogAttrs(r.Context(), 0, "test fire", attrs(r, e.ID, hook.DeliveryID, res)...)
	out := testResultJSON{Delivered: res.Delivered(), LatencyMS: last.LatencyMS, DeliveryID: hook.DeliveryID}
	if res.StatusCode != 0 {
		out.StatusCode = &res.StatusCode
	}
	if res.Err != nil {
		out.Error = &last.Error
	}
	writeJSON(w, http.StatusOK, out)
}

// logTest records a test fire in the delivery log, as every webhook sent
// is: a delivery of event "test" with its payload and its one attempt, the
// attempt written before the summary that counts it. It is not retried,
// but can be redelivered like any other.
func (h *handler) logTest(r *http.Request, e domain.Endpoint, hook dispatch.Webhook, res dispatch.Result, last *domain.LastTest) error {
	status := domain.DeliveryFailed
	if last.Delivered {
		status = domain.DeliveryDelivered
	}
	d := domain.Delivery{
		ID: hook.DeliveryID, AccountID: e.AccountID, EndpointID: e.ID, EndpointURL: e.URL,
		EventID: payload.TestEventID(hook.DeliveryID), Event: payload.TestEvent, Trigger: payload.TestEvent,
		ThermometerID: payload.TestThermometer(e).ID, Status: status, AttemptCount: 1, RoundStart: 1,
		LastStatusCode: last.StatusCode, LastError: last.Error, CreatedAt: last.At, UpdatedAt: h.Now().UTC(),
	}
	expires := last.At.Add(h.Retention)
	attempt := res.Attempt(1, last.At)
	items := []store.LogItem{
		{AccountID: e.AccountID, DeliveryID: d.ID, Payload: hook.Body, Expires: expires},
		{AccountID: e.AccountID, DeliveryID: d.ID, Request: store.NewRequestKey(), Expires: expires, Attempt: &attempt},
	}
	if err := h.Deliveries.PutLogItems(r.Context(), items); err != nil {
		return fmt.Errorf("log test fire %s: %w", d.ID, err)
	}
	if _, _, err := h.Deliveries.CreateDelivery(r.Context(), d, expires); err != nil {
		return fmt.Errorf("log test fire %s: %w", d.ID, err)
	}
	return nil
}

func sameBasicAuth(a, b *domain.BasicAuth) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Username == b.Username && string(a.Password) == string(b.Password)
}

type thermometerJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

type thermometersJSON struct {
	Thermometers []thermometerJSON `json:"thermometers"`
}

func thermometersView(ths []domain.Thermometer) thermometersJSON {
	out := thermometersJSON{Thermometers: make([]thermometerJSON, 0, len(ths))}
	for _, th := range ths {
		out.Thermometers = append(out.Thermometers, thermometerJSON(th))
	}
	return out
}

func (h *handler) getThermometers(w http.ResponseWriter, r *http.Request, account string) {
	e, err := h.endpoint(r, account)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, thermometersView(e.Thermometers))
}

// setThermometers replaces the endpoint's linked thermometers. Only an
// endpoint whose test fire was delivered may be linked to a thermometer, so
// events never start flowing to a URL nobody has seen work. Unlinking needs
// no test: the events of thermometers linked before the endpoint's URL or
// credentials changed go on to it meanwhile, and the account holder may
// want to stop them until a test succeeds.
func (h *handler) setThermometers(w http.ResponseWriter, r *http.Request, account string) {
	o, err := readObject(r, false)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	var v domain.ValidationError
	o.unknown(&v, "thermometers")
	items, present, err := o.objects("thermometers")
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if !present {
		v.Add("thermometers", "is required (an empty array unlinks every thermometer)")
	}
	if len(items) > domain.MaxThermometers {
		// Refused whole: the items' own rules would add thousands of
		// details for a 64 KiB array of empty objects.
		v.Add("thermometers", "at most %d thermometers can be linked to one endpoint; got %d", domain.MaxThermometers, len(items))
		h.writeError(w, r, v.Err())
		return
	}
	ths := make([]domain.Thermometer, 0, len(items))
	seen := map[string]bool{}
	for i, item := range items {
		var th domain.Thermometer
		item.unknown(&v, "id", "name", "type")
		for _, f := range []struct {
			key string
			dst *string
		}{{"id", &th.ID}, {"name", &th.Name}, {"type", &th.Type}} {
			key, dst := f.key, f.dst
			ok, err := item.str(key, dst)
			if err != nil {
				h.writeError(w, r, err)
				return
			}
			if !ok {
				v.Add(item.name(key), "is required")
			}
		}
		domain.CheckThermometer(&v, fmt.Sprintf("thermometers[%d]", i), th)
		if seen[th.ID] {
			v.Add(fmt.Sprintf("thermometers[%d].id", i), "duplicate thermometer %q", th.ID)
		}
		seen[th.ID] = true
		ths = append(ths, th)
	}
	if err := v.Err(); err != nil {
		h.writeError(w, r, err)
		return
	}
	e, err := h.modify(r, account, func(e *domain.Endpoint) error {
		if !e.Tested && !onlyLinked(e.Thermometers, ths) {
			return domain.Errorf(domain.CodeEndpointNotTested, "send a test webhook that is delivered (POST /v1/endpoints/%s/test) before linking thermometers", e.ID)
		}
		e.Thermometers = ths
		return nil
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.log(r, "thermometers linked", e.ID)
	writeJSON(w, http.StatusOK, thermometersView(e.Thermometers))
}

// onlyLinked reports whether every thermometer of next is linked already.
func onlyLinked(linked, next []domain.Thermometer) bool {
	for _, th := range next {
		if !slices.ContainsFunc(linked, func(l domain.Thermometer) bool { return l.ID == th.ID }) {
			return false
		}
	}
	return true
}

// endpointJSON is the endpoint object of API.md section 4.
type endpointJSON struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	URL            string            `json:"url"`
	Triggers       []string          `json:"triggers"`
	BasicAuth      *basicAuthJSON    `json:"basic_auth"`
	Secret         string            `json:"secret,omitempty"`
	SecretStandard string            `json:"secret_standard,omitempty"`
	Status         string            `json:"status"`
	Enabled        bool              `json:"enabled"`
	LastTest       *lastTestJSON     `json:"last_test"`
	Thermometers   []thermometerJSON `json:"thermometers"`
	CreatedAt      string            `json:"created_at"`
	UpdatedAt      string            `json:"updated_at"`
}

type basicAuthJSON struct {
	Username string `json:"username"`
}

type lastTestJSON struct {
	At         string  `json:"at"`
	Delivered  bool    `json:"delivered"`
	StatusCode *int    `json:"status_code"`
	LatencyMS  int64   `json:"latency_ms"`
	Error      *string `json:"error"`
}

// endpointView is e as the API shows it; secret is shown when not empty. The
// Basic Auth password is never shown.
func endpointView(e domain.Endpoint, secret string) endpointJSON {
	v := endpointJSON{
		ID: e.ID, Name: e.Name, URL: e.URL, Triggers: e.Triggers, Status: e.Status(), Enabled: e.Enabled,
		Thermometers: thermometersView(e.Thermometers).Thermometers,
		CreatedAt:    e.CreatedAt.UTC().Format(time.RFC3339), UpdatedAt: e.UpdatedAt.UTC().Format(time.RFC3339),
	}
	if v.Triggers == nil {
		v.Triggers = []string{}
	}
	if secret != "" {
		v.Secret, v.SecretStandard = secret, signature.StandardSecret(secret)
	}
	if e.BasicAuth != nil {
		v.BasicAuth = &basicAuthJSON{Username: e.BasicAuth.Username}
	}
	if lt := e.LastTest; lt != nil {
		v.LastTest = &lastTestJSON{At: lt.At.UTC().Format(time.RFC3339), Delivered: lt.Delivered, LatencyMS: lt.LatencyMS}
		if lt.StatusCode != 0 {
			code := lt.StatusCode
			v.LastTest.StatusCode = &code
		}
		if lt.Error != "" {
			msg := lt.Error
			v.LastTest.Error = &msg
		}
	}
	return v
}
