// Package store keeps the service's state in DynamoDB.
//
// The endpoints table is a single table keyed by (pk, sk):
//
//	ACCOUNT#<account>   ACCOUNT              the account (created with its first key)
//	ACCOUNT#<account>   ENDPOINT#<endpoint>  an endpoint; Query by pk lists an account's endpoints
//	APIKEY#<sha256>     APIKEY               an API key's hash and the account it belongs to
//
// Every access is a GetItem, a Query on one partition or a conditional write:
// there is no Scan on any request or delivery path.
package store
