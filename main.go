package main

import (
	"os"
)

func main() {
	configureLogging(os.Getenv)
	os.Exit(0)
}
