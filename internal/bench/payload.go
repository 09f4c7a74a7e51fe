package bench

import (
	"math/rand/v2"
	"strconv"
)

// A realistic JSON payload for the compression scenario: an order event of the kind an
// e-commerce back end pushes, with repeated keys and varying values (names, SKUs, prices,
// timestamps), so that per-message deflate finds what it would find in production: repeated
// structure, not a run of one byte. The bench marker ~topic~seq~sent~ is the first string
// value, so the reader finds it as for the text payload.

var (
	firstNames = []string{"Alice", "Bruno", "Chloé", "Dmitri", "Emma", "Farid", "Grace", "Hiro", "Inès", "Jonas"}
	lastNames  = []string{"Martin", "Okafor", "Schmidt", "Nakamura", "Rossi", "Dubois", "Kowalski", "Silva"}
	products   = []string{"Wireless mouse", "USB-C cable 2m", "Mechanical keyboard", "27-inch monitor",
		"Laptop stand", "Noise-cancelling headphones", "Webcam 1080p", "Desk lamp", "Ergonomic chair"}
	statuses = []string{"paid", "packed", "shipped", "out_for_delivery", "delivered"}
	cities   = []string{"Lyon", "Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "Kraków", "Austin"}
)

// appendJSONPayload appends a JSON document of about size bytes, with its quotes escaped so
// that it can sit inside a JSON string (the publish body sends data as a string; subscribers
// receive the document itself).
func appendJSONPayload(b []byte, topic int, seq, sent int64, size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(seq), uint64(topic+2)))
	start := len(b)
	escaped := 0 // backslashes added: they are not part of the document's size
	q := func() { b = append(b, '\\', '"'); escaped++ }
	key := func(k string) { q(); b = append(b, k...); q(); b = append(b, ':') }
	str := func(k, v string) { key(k); q(); b = append(b, v...); q() }
	num := func(k string, v int64) { key(k); b = strconv.AppendInt(b, v, 10) }
	money := func(k string, cents int64) {
		key(k)
		b = strconv.AppendInt(b, cents/100, 10)
		b = append(b, '.')
		if cents%100 < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, cents%100, 10)
	}
	b = append(b, '{')
	key("bench")
	q()
	b = appendPayload(b, topic, seq, sent, 0)
	q()
	b = append(b, ',')
	str("type", "order.updated")
	b = append(b, ',')
	str("orderId", "ord-"+strconv.FormatInt(100000+rng.Int64N(900000), 10))
	b = append(b, ',')
	str("status", statuses[rng.IntN(len(statuses))])
	b = append(b, ',')
	str("updatedAt", "2026-11-28T"+strconv.Itoa(10+rng.IntN(10))+":"+strconv.Itoa(10+rng.IntN(50))+":"+strconv.Itoa(10+rng.IntN(50))+"."+strconv.Itoa(100+rng.IntN(900))+"Z")
	b = append(b, `,`...)
	key("customer")
	b = append(b, '{')
	str("id", "cus_"+strconv.FormatUint(rng.Uint64(), 36))
	b = append(b, ',')
	first, last := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
	str("name", first+" "+last)
	b = append(b, ',')
	str("city", cities[rng.IntN(len(cities))])
	b = append(b, "},"...)
	key("items")
	b = append(b, '[')
	var total int64
	for i := 0; len(b)-start-escaped < size-120; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		str("sku", "SKU-"+strconv.Itoa(1000+rng.IntN(9000)))
		b = append(b, ',')
		str("name", products[rng.IntN(len(products))])
		b = append(b, ',')
		qty := 1 + rng.Int64N(4)
		num("qty", qty)
		b = append(b, ',')
		price := 199 + rng.Int64N(30000)
		money("unitPrice", price)
		total += qty * price
		b = append(b, '}')
	}
	b = append(b, "],"...)
	money("total", total)
	b = append(b, ',')
	str("currency", "EUR")
	b = append(b, ',')
	num("version", seq)
	b = append(b, '}')
	return b
}
