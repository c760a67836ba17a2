package domain

import "regexp"

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)

// ValidAccountID reports whether id may name an account: 1 to 128 characters of
// A-Za-z0-9_.:- (the alphabet of ids in the event schema).
func ValidAccountID(id string) bool { return idPattern.MatchString(id) }
