package samlprovider

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/crewjam/saml"
)

// maxRelayState bounds RelayState. SAML asks senders for at most 80 bytes;
// some SPs send more, so we are lenient up to this.
const maxRelayState = 1024

// Errors of message decoding.
var (
	errTooLarge  = errors.New("saml: message too large")
	errMalformed = errors.New("saml: malformed message")
)

// message is a SAML protocol message as it arrived over a binding.
type message struct {
	binding    string // saml.HTTPRedirectBinding or saml.HTTPPostBinding
	xml        []byte
	relayState string

	// querySigned is set when an HTTP-Redirect message carries a signature
	// in its query string.
	querySigned bool
	sigAlg      string
	signature   []byte
	signedQuery []byte // the octets the sender signed
}

// readMessage decodes the parameter param ("SAMLRequest") from an
// HTTP-Redirect (GET) or HTTP-POST request, within the size limits: the
// encoded form and the inflated XML are both bounded, so neither a huge
// request nor a deflate bomb costs more than the limits.
func (p *Provider) readMessage(w http.ResponseWriter, r *http.Request, param string) (*message, error) {
	maxEncoded, maxXML := p.cfg.MaxRequestBytes, p.cfg.MaxInflatedBytes
	switch r.Method {
	case http.MethodGet:
		if len(r.URL.RawQuery) > maxEncoded+2*maxRelayState+4096 {
			return nil, fmt.Errorf("%w: query of %d bytes", errTooLarge, len(r.URL.RawQuery))
		}
		raw, err := rawQueryValues(r.URL.RawQuery, param, "RelayState", "SigAlg", "Signature")
		if err != nil {
			return nil, err
		}
		encoded, err := url.QueryUnescape(raw[param])
		if err != nil || encoded == "" {
			return nil, fmt.Errorf("%w: no %s", errMalformed, param)
		}
		if len(encoded) > maxEncoded {
			return nil, fmt.Errorf("%w: %s of %d bytes", errTooLarge, param, len(encoded))
		}
		compressed, err := decodeBase64(encoded)
		if err != nil {
			return nil, err
		}
		xmlBytes, err := inflate(compressed, maxXML)
		if err != nil {
			return nil, err
		}
		msg := &message{binding: saml.HTTPRedirectBinding, xml: xmlBytes}
		if msg.relayState, err = url.QueryUnescape(raw["RelayState"]); err != nil {
			return nil, fmt.Errorf("%w: RelayState", errMalformed)
		}
		if raw["Signature"] != "" || raw["SigAlg"] != "" {
			msg.querySigned = true
			if msg.sigAlg, err = url.QueryUnescape(raw["SigAlg"]); err != nil {
				return nil, fmt.Errorf("%w: SigAlg", errMalformed)
			}
			sig, err := url.QueryUnescape(raw["Signature"])
			if err != nil {
				return nil, fmt.Errorf("%w: Signature", errMalformed)
			}
			if msg.signature, err = decodeBase64(sig); err != nil {
				return nil, err
			}
			// The signed octets are the parameters exactly as they were
			// encoded in the URL, in this order (SAML bindings 3.4.4.1).
			signed := param + "=" + raw[param]
			if _, ok := raw["RelayState"]; ok {
				signed += "&RelayState=" + raw["RelayState"]
			}
			signed += "&SigAlg=" + raw["SigAlg"]
			msg.signedQuery = []byte(signed)
		}
		return msg, msg.checkRelayState()
	case http.MethodPost:
		// Room for the message, RelayState and the field names.
		r.Body = http.MaxBytesReader(w, r.Body, int64(maxEncoded+2*maxRelayState+1024))
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, fmt.Errorf("%w: body over %d bytes", errTooLarge, tooBig.Limit)
			}
			return nil, fmt.Errorf("%w: %v", errMalformed, err)
		}
		if len(r.PostForm[param]) != 1 || len(r.PostForm["RelayState"]) > 1 {
			return nil, fmt.Errorf("%w: needs one %s", errMalformed, param)
		}
		encoded := r.PostForm.Get(param)
		if len(encoded) > maxEncoded {
			return nil, fmt.Errorf("%w: %s of %d bytes", errTooLarge, param, len(encoded))
		}
		xmlBytes, err := decodeBase64(encoded)
		if err != nil {
			return nil, err
		}
		if len(xmlBytes) > maxXML {
			return nil, fmt.Errorf("%w: %d bytes of XML", errTooLarge, len(xmlBytes))
		}
		msg := &message{binding: saml.HTTPPostBinding, xml: xmlBytes, relayState: r.PostForm.Get("RelayState")}
		return msg, msg.checkRelayState()
	default:
		return nil, fmt.Errorf("%w: method %s", errMalformed, r.Method)
	}
}

func (m *message) checkRelayState() error {
	if len(m.relayState) > maxRelayState {
		return fmt.Errorf("%w: RelayState of %d bytes", errTooLarge, len(m.relayState))
	}
	return nil
}

// rawQueryValues returns the still URL-encoded values of the wanted keys,
// refusing a key given twice (which would make the signed octets
// ambiguous). A key that is absent is missing from the map.
func rawQueryValues(rawQuery string, keys ...string) (map[string]string, error) {
	out := map[string]string{}
	for part := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("%w: query", errMalformed)
		}
		for _, want := range keys {
			if key != want {
				continue
			}
			if _, dup := out[key]; dup {
				return nil, fmt.Errorf("%w: %s given twice", errMalformed, key)
			}
			out[key] = v
		}
	}
	return out, nil
}

// decodeBase64 accepts standard base64 with or without line breaks.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", errMalformed, err)
	}
	return b, nil
}

// inflate decompresses raw DEFLATE data, reading at most limit bytes of
// output.
func inflate(compressed []byte, limit int) ([]byte, error) {
	fr := flate.NewReader(bytes.NewReader(compressed))
	defer fr.Close()
	out, err := io.ReadAll(io.LimitReader(fr, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: inflate: %v", errMalformed, err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: inflates to more than %d bytes", errTooLarge, limit)
	}
	return out, nil
}

// deflate compresses data for the HTTP-Redirect binding.
func deflate(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := fw.Write(data); err != nil {
		return nil, err
	}
	if err := fw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
