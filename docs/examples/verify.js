// Checks the X-Ct-Hmac-Sha256 verification function shown in docs/receiving.md
// against the signature test vectors.
//
// Usage: node docs/examples/verify.js testdata/signature-vectors.json
'use strict';

const crypto = require('crypto');
const fs = require('fs');

// verifyWebhook reports whether signature (the X-Ct-Hmac-Sha256 header) was
// made with secret over "Date: " + date + "\n" + body. body must be the raw
// request body as a Buffer, exactly as received.
function verifyWebhook(secret, date, body, signature) {
  if (!secret) {
    return false; // never verify with an empty key (e.g. a missing setting)
  }
  const expected = crypto
    .createHmac('sha256', Buffer.from(secret, 'ascii')) // the secret's ASCII bytes, not hex-decoded
    .update('Date: ' + date + '\n')
    .update(body)
    .digest('base64');
  const a = Buffer.from(expected);
  const b = Buffer.from(String(signature || ''));
  return a.length === b.length && crypto.timingSafeEqual(a, b); // constant time
}

// dateIsFresh reports whether the Date header is within 5 minutes of nowMs.
function dateIsFresh(date, nowMs = Date.now()) {
  const sentMs = Date.parse(date);
  return !Number.isNaN(sentMs) && Math.abs(nowMs - sentMs) <= 5 * 60 * 1000;
}

function main() {
  if (process.argv.length !== 3) {
    console.error('usage: node verify.js <signature-vectors.json>');
    process.exit(2);
  }
  const vectors = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')).vectors || [];
  if (vectors.length === 0) {
    console.error('no vectors in ' + process.argv[2]);
    process.exit(2);
  }
  let failed = 0;
  for (const v of vectors) {
    const body = Buffer.from(v.body_base64, 'base64');
    const tampered = Buffer.concat([body, Buffer.from(' ')]);
    const sentMs = Date.parse(v.date);
    let problem = null;
    if (!verifyWebhook(v.secret, v.date, body, v.x_ct_hmac_sha256)) {
      problem = 'expected signature rejected';
    } else if (verifyWebhook(v.secret, v.date, tampered, v.x_ct_hmac_sha256)) {
      problem = 'tampered body accepted';
    } else if (!dateIsFresh(v.date, sentMs + 4 * 60 * 1000) || dateIsFresh(v.date, sentMs + 6 * 60 * 1000)) {
      problem = 'Date freshness check wrong';
    }
    if (problem) {
      console.log('FAIL ' + v.name + ': ' + problem);
      failed++;
    } else {
      console.log('ok   ' + v.name);
    }
  }
  if (failed > 0) {
    console.log('node: ' + failed + ' of ' + vectors.length + ' vectors failed');
    process.exit(1);
  }
  console.log('node: all ' + vectors.length + ' vectors passed');
}

main();
