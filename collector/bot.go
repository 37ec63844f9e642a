package collector

import (
	"bytes"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// botMarks are user-agent substrings (lower case) of crawlers, monitors and automation.
// The flag is stored with the signal; what to do with bots is the query's choice.
var botMarks = [][]byte{
	[]byte("bot"), []byte("crawl"), []byte("spider"), []byte("slurp"), []byte("headless"),
	[]byte("phantomjs"), []byte("selenium"), []byte("puppeteer"), []byte("playwright"),
	[]byte("lighthouse"), []byte("curl/"), []byte("wget/"), []byte("python-requests"),
	[]byte("go-http-client"), []byte("httpclient"), []byte("monitor"), []byte("preview"),
	[]byte("facebookexternalhit"), []byte("pingdom"), []byte("uptime"),
}

// isBot flags an empty user agent or one that names itself a machine. It looks at the
// first 256 bytes, lower-cased on the stack.
func isBot(ua []byte) bool {
	if len(ua) == 0 {
		return true
	}
	var low [256]byte
	n := copy(low[:], ua)
	for i := 0; i < n; i++ {
		if c := low[i]; c >= 'A' && c <= 'Z' {
			low[i] = c + 'a' - 'A'
		}
	}
	for _, m := range botMarks {
		if bytes.Contains(low[:n], m) {
			return true
		}
	}
	return false
}

// botCache remembers the verdicts on the user agents seen last: a few browser versions
// send most signals, and looking one up is a hash and a compare where isBot is twenty
// scans. Entries are exact (the whole user agent is compared); a user agent that
// displaces another costs one allocation.
type botCache struct {
	slots [256]atomic.Pointer[botVerdict]
}

type botVerdict struct {
	ua  string
	bot bool
}

// maxCachedUA is the longest user agent remembered; longer ones are judged every time.
const maxCachedUA = 512

func (c *botCache) isBot(ua []byte) bool {
	if len(ua) == 0 || len(ua) > maxCachedUA {
		return isBot(ua)
	}
	slot := &c.slots[xxhash.Sum64(ua)%uint64(len(c.slots))]
	if v := slot.Load(); v != nil && v.ua == string(ua) {
		return v.bot
	}
	bot := isBot(ua)
	slot.Store(&botVerdict{ua: string(ua), bot: bot})
	return bot
}
