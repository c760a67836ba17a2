<?php
// Checks the X-Ct-Hmac-Sha256 verification function shown in docs/receiving.md
// against the signature test vectors.
//
// Usage: php docs/examples/verify.php testdata/signature-vectors.json

declare(strict_types=1);

// verify_webhook reports whether $signature (the X-Ct-Hmac-Sha256 header) was
// made with $secret over "Date: " . $date . "\n" . $body. $body must be the raw
// request body, exactly as received (file_get_contents('php://input')).
function verify_webhook(string $secret, string $date, string $body, string $signature): bool
{
    if ($secret === '') {
        return false; // never verify with an empty key (e.g. a missing setting)
    }
    // The key is the secret's ASCII text, not hex-decoded.
    $expected = base64_encode(hash_hmac('sha256', "Date: " . $date . "\n" . $body, $secret, true));
    return hash_equals($expected, $signature); // constant time
}

// date_is_fresh reports whether the Date header is within 5 minutes of $now.
function date_is_fresh(string $date, ?int $now = null): bool
{
    $sent = DateTimeImmutable::createFromFormat('D, d M Y H:i:s \G\M\T', $date, new DateTimeZone('UTC'));
    if ($sent === false) {
        return false;
    }
    return abs(($now ?? time()) - $sent->getTimestamp()) <= 300;
}

function main(array $argv): int
{
    if (count($argv) !== 2) {
        fwrite(STDERR, "usage: php verify.php <signature-vectors.json>\n");
        return 2;
    }
    $raw = file_get_contents($argv[1]);
    if ($raw === false) {
        return 2;
    }
    $vectors = json_decode($raw, true, 512, JSON_THROW_ON_ERROR)['vectors'] ?? [];
    if (count($vectors) === 0) {
        fwrite(STDERR, "no vectors in " . $argv[1] . "\n");
        return 2;
    }
    $failed = 0;
    foreach ($vectors as $v) {
        $body = base64_decode($v['body_base64'], true);
        $problem = null;
        if ($body === false) {
            $problem = 'body_base64 is not valid base64';
        } else {
            $sent = strtotime($v['date']);
            if (!verify_webhook($v['secret'], $v['date'], $body, $v['x_ct_hmac_sha256'])) {
                $problem = 'expected signature rejected';
            } elseif (verify_webhook($v['secret'], $v['date'], $body . ' ', $v['x_ct_hmac_sha256'])) {
                $problem = 'tampered body accepted';
            } elseif (!date_is_fresh($v['date'], $sent + 240) || date_is_fresh($v['date'], $sent + 360)) {
                $problem = 'Date freshness check wrong';
            }
        }
        if ($problem !== null) {
            echo "FAIL {$v['name']}: {$problem}\n";
            $failed++;
        } else {
            echo "ok   {$v['name']}\n";
        }
    }
    if ($failed > 0) {
        echo "php: {$failed} of " . count($vectors) . " vectors failed\n";
        return 1;
    }
    echo "php: all " . count($vectors) . " vectors passed\n";
    return 0;
}

exit(main($argv));
