//go:build !linux

package main

func ensureTitleRoom() {}

func setProcessTitle(string) {}
