package testsmtp

import (
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"
)

// maxMultipartDepth bounds nesting such as mixed > related > alternative.
const maxMultipartDepth = 8

var wordDecoder = &mime.WordDecoder{
	CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
		// Our senders write UTF-8; anything else is a bug worth failing on.
		return nil, fmt.Errorf("unexpected charset %q in encoded word", charset)
	},
}

func decodeHeader(v string) (string, error) {
	return wordDecoder.DecodeHeader(v)
}

// collectBodies walks a (possibly multipart) body and stores the first
// text/plain and text/html parts, decoded, into r.
func collectBodies(r *Received, contentType, transferEncoding string, body io.Reader, depth int) error {
	if depth > maxMultipartDepth {
		return fmt.Errorf("multipart nested more than %d levels", maxMultipartDepth)
	}
	mediaType, params := "text/plain", map[string]string{"charset": "us-ascii"}
	if contentType != "" {
		var err error
		mediaType, params, err = mime.ParseMediaType(contentType)
		if err != nil {
			return fmt.Errorf("content-type %q: %w", contentType, err)
		}
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		boundary := params["boundary"]
		if boundary == "" {
			return fmt.Errorf("%s without boundary", mediaType)
		}
		mr := multipart.NewReader(body, boundary)
		for {
			// NextRawPart keeps Content-Transfer-Encoding visible; we decode
			// every encoding ourselves, the same way at every level.
			part, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", mediaType, err)
			}
			err = collectBodies(r, part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part, depth+1)
			if err != nil {
				return err
			}
		}
	}
	if mediaType != "text/plain" && mediaType != "text/html" {
		return nil // attachments and the like are not our concern
	}
	charset := strings.ToLower(params["charset"])
	if charset != "" && charset != "utf-8" && charset != "us-ascii" {
		return fmt.Errorf("%s part in unexpected charset %q", mediaType, charset)
	}
	decoded, err := decodeTransfer(transferEncoding, body)
	if err != nil {
		return fmt.Errorf("%s part: %w", mediaType, err)
	}
	if !utf8.Valid(decoded) {
		return fmt.Errorf("%s part is not valid UTF-8", mediaType)
	}
	text := strings.ReplaceAll(string(decoded), "\r\n", "\n")
	switch {
	case mediaType == "text/plain" && r.Text == "":
		r.Text = text
	case mediaType == "text/html" && r.HTML == "":
		r.HTML = text
	}
	return nil
}

func decodeTransfer(encoding string, body io.Reader) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "7bit", "8bit", "binary":
		return io.ReadAll(body)
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(body))
	case "base64":
		return io.ReadAll(base64.NewDecoder(base64.StdEncoding, body))
	default:
		return nil, fmt.Errorf("unknown transfer encoding %q", encoding)
	}
}
