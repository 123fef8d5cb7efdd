// Package ktqswig is the SWIG-generated layer under package ktq; it is
// internal so that no SWIG type leaks into the public API.
package ktqswig

// #cgo pkg-config: ktq
import "C"
