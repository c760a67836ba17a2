// Package domain holds the service's core vocabulary: accounts, endpoints and
// the one error type every layer speaks. It imports neither the AWS SDK nor
// aws-lambda-go; adapters (store, api) translate to and from it.
package domain
