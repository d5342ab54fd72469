//go:build !linux

package main

import "errors"

type dirWatch struct{}

func newDirWatch(string) (*dirWatch, error) {
	return nil, errors.New("following Docker's json-file log needs inotify (Linux)")
}

func (w *dirWatch) next() <-chan struct{} { return nil }
func (w *dirWatch) woke()                 {}
func (w *dirWatch) close()                {}
