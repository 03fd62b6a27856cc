package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Secrets never need to be on the command line, where every local user
// can read them (ps, /proc/PID/cmdline). Each secret is taken from the
// last of these sources that is set (README, Operations):
//
//  1. the config file: websocket.socketApiKey or broker.apiKeyFile;
//     broker.jwt.hs256Secret or broker.jwt.hs256SecretFile (not both);
//  2. the environment: BROKER_SOCKET_API_KEY, BROKER_JWT_SECRET (an empty
//     variable counts as unset);
//  3. flags: -api-key-file; -jwt-secret-file or -jwt-secret (not both;
//     -jwt-secret is kept for compatibility and warned about).
const (
	envAPIKey    = "BROKER_SOCKET_API_KEY"
	envJWTSecret = "BROKER_JWT_SECRET"
)

// maxSecretFile bounds a secret file: anything larger is the wrong file.
const maxSecretFile = 64 << 10

// secretFlags are the secret sources given on the command line.
type secretFlags struct {
	apiKeyFile    string
	jwtSecretFile string
	jwtSecret     *string // -jwt-secret, nil unless given
}

// secretOrigins says where each secret came from ("" for nowhere), for the
// start-up log; it never holds a secret.
type secretOrigins struct {
	apiKey, jwtSecret string
}

// secretSource is where one secret may come from, lowest precedence first.
type secretSource struct {
	literalKey string // config key of the literal value, already in dst
	fileKey    string // config key naming a file
	file       string // ... and its value
	env        string
	flag       string // flag naming a file
	flagFile   string // ... and its value
}

// resolve sets *dst from the highest source that is set and returns a
// description of it (never the secret itself).
func (src secretSource) resolve(dst *string, getenv func(string) string) (string, error) {
	switch {
	case src.flagFile != "":
		v, err := readSecretFile(src.flagFile)
		if err != nil {
			return "", fmt.Errorf("%s %q: %w", src.flag, src.flagFile, err)
		}
		*dst = v
		return src.flag + " " + src.flagFile, nil
	case getenv(src.env) != "":
		*dst = getenv(src.env)
		return "environment " + src.env, nil
	case src.file != "":
		v, err := readSecretFile(src.file)
		if err != nil {
			return "", fmt.Errorf("config %s %q: %w", src.fileKey, src.file, err)
		}
		*dst = v
		return "config " + src.fileKey + " " + src.file, nil
	case *dst != "":
		return "config " + src.literalKey, nil
	}
	return "", nil
}

// resolveSecrets applies the sources above onto o.broker. The config
// file's literal values are already there; o.apiKeyFile and
// o.jwtSecretFile hold the config file's file keys.
func resolveSecrets(o *options, fl secretFlags, getenv func(string) string) (secretOrigins, error) {
	var from secretOrigins
	if fl.jwtSecret != nil && fl.jwtSecretFile != "" {
		return from, errors.New("-jwt-secret and -jwt-secret-file are both set: use one")
	}
	var err1, err2 error
	from.apiKey, err1 = secretSource{
		literalKey: "websocket.socketApiKey", fileKey: "broker.apiKeyFile", file: o.apiKeyFile,
		env: envAPIKey, flag: "-api-key-file", flagFile: fl.apiKeyFile,
	}.resolve(&o.broker.APIKey, getenv)
	if fl.jwtSecret != nil {
		o.broker.Auth.HS256Secret = *fl.jwtSecret
		from.jwtSecret = "-jwt-secret"
	} else {
		from.jwtSecret, err2 = secretSource{
			literalKey: "broker.jwt.hs256Secret", fileKey: "broker.jwt.hs256SecretFile", file: o.jwtSecretFile,
			env: envJWTSecret, flag: "-jwt-secret-file", flagFile: fl.jwtSecretFile,
		}.resolve(&o.broker.Auth.HS256Secret, getenv)
	}
	return from, errors.Join(err1, err2)
}

// readSecretFile reads a secret, dropping the trailing newline editors add.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("larger than %d bytes: not a secret file", maxSecretFile)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", errors.New("file is empty")
	}
	return s, nil
}
