package securitykeys_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// softKey is a software authenticator for tests: an ES256 key that answers
// the options a page carries the way a browser and a security key would,
// for any origin the test chooses.
type softKey struct {
	key     *ecdsa.PrivateKey
	id      []byte
	counter uint32
	rpID    string
	handle  []byte
	synced  bool // backup eligible (a synced passkey)
	aaguid  []byte
}

func newSoftKey(t *testing.T, rpID string) *softKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &softKey{key: key, id: id, rpID: rpID, aaguid: make([]byte, 16)}
}

var b64 = base64.RawURLEncoding

type pageOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		RPID string `json:"rpId"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	} `json:"publicKey"`
}

func parseOptions(t *testing.T, raw string) pageOptions {
	t.Helper()
	var o pageOptions
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		t.Fatalf("options %q: %v", raw, err)
	}
	return o
}

func (k *softKey) clientData(t *testing.T, typ, challenge, origin string) []byte {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": origin, "crossOrigin": false})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (k *softKey) flags(attested bool) byte {
	f := byte(0x01 | 0x04) // user present, user verified
	if k.synced {
		f |= 0x08 | 0x10 // backup eligible, backed up
	}
	if attested {
		f |= 0x40
	}
	return f
}

func (k *softKey) authData(attested bool) []byte {
	rp := sha256.Sum256([]byte(k.rpID))
	out := append(rp[:], k.flags(attested))
	out = binary.BigEndian.AppendUint32(out, k.counter)
	if !attested {
		return out
	}
	out = append(out, k.aaguid...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(k.id)))
	out = append(out, k.id...)
	x, y := make([]byte, 32), make([]byte, 32)
	k.key.PublicKey.X.FillBytes(x)
	k.key.PublicKey.Y.FillBytes(y)
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
	if err != nil {
		panic(err)
	}
	return append(out, cose...)
}

// create answers registration options as navigator.credentials.create
// would on a page of origin.
func (k *softKey) create(t *testing.T, options, origin string) string {
	t.Helper()
	o := parseOptions(t, options)
	if h, err := b64.DecodeString(o.PublicKey.User.ID); err == nil {
		k.handle = h
	}
	cd := k.clientData(t, "webauthn.create", o.PublicKey.Challenge, origin)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(true)})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd),
			"attestationObject": b64.EncodeToString(att), "transports": []string{"usb"}},
		"clientExtensionResults": map[string]any{},
	})
	return string(raw)
}

// get answers login options as navigator.credentials.get would on a page
// of origin, counting the signature counter up first.
func (k *softKey) get(t *testing.T, options, origin string) string {
	t.Helper()
	k.counter++
	return k.getAt(t, options, origin, k.counter)
}

// getAt signs with the given counter (a clone or replay test).
func (k *softKey) getAt(t *testing.T, options, origin string, counter uint32) string {
	t.Helper()
	o := parseOptions(t, options)
	saved := k.counter
	k.counter = counter
	ad := k.authData(false)
	k.counter = saved
	cd := k.clientData(t, "webauthn.get", o.PublicKey.Challenge, origin)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), ad...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(k.handle)},
		"clientExtensionResults": map[string]any{},
	})
	return string(raw)
}
