package domain

import "time"

// Endpoint is an account holder's webhook receiver.
type Endpoint struct {
	ID        string
	AccountID string
	Name      string
	URL       string
	Triggers  []string
	Status    string
	Enabled   bool
	CreatedAt time.Time
	UpdatedAt time.Time
}
