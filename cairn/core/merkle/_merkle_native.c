/* The OpenZeppelin standard Merkle tree over [address, uint256] leaves in one call (see cairn/merkle.py): the
   per-leaf loop, the sort and the inner nodes without a Python call per hash. keccak256 itself is pycryptodome's.

   Built on first use by cairn.merkle with the system C compiler (cc -O2 -shared -fPIC) and loaded with ctypes;
   without a compiler cairn.merkle builds the same tree in Python. A loaded build is checked against the Python
   builder first. */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* pycryptodome's compiled keccak (the functions cairn.merkle also calls through ctypes), passed in as pointers:
   keccak_reset(state), keccak_absorb(state, in, len), keccak_digest(state, out, len, padding). */
typedef int (*keccak_reset_fn)(void *);
typedef int (*keccak_absorb_fn)(void *, const uint8_t *, size_t);
typedef int (*keccak_digest_fn)(void *, uint8_t *, size_t, uint8_t);

typedef struct {
    void *state;
    keccak_reset_fn reset;
    keccak_absorb_fn absorb;
    keccak_digest_fn digest;
} keccak256_t;

static int keccak256(const keccak256_t *k, const uint8_t *in, size_t len, uint8_t *out) {
    if (k->reset(k->state) || k->absorb(k->state, in, len) || k->digest(k->state, out, 32, 0x01)) return -3;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

typedef struct {
    uint8_t hash[32];
    uint64_t index;
} keyed_leaf;

static int by_hash_then_index(const void *a, const void *b) {
    const keyed_leaf *x = a, *y = b;
    int c = memcmp(x->hash, y->hash, 32);
    if (c) return c;
    return (x->index > y->index) - (x->index < y->index);
}

/* Build the tree of n >= 1 leaves: `hex` holds n addresses as 40 hex digits each (no 0x), `amounts` n 32-byte
   big-endian amounts. Writes the 2n-1 nodes (32 bytes each, OZ layout: leaf hashes sorted ascending from the
   end backwards, children of i at 2i+1 and 2i+2, pairs hashed sorted) and tree_index[i] (where leaf i sits).
   Returns 0, or -1 on a bad hex digit, -2 when out of memory, -3 when keccak fails. */
int cairn_build_tree(void *state, void *reset, void *absorb, void *digest, const char *hex, const uint8_t *amounts,
                     size_t n, uint8_t *nodes, int64_t *tree_index) {
    keccak256_t k = {state, (keccak_reset_fn)reset, (keccak_absorb_fn)absorb, (keccak_digest_fn)digest};
    keyed_leaf *leaves = malloc(n * sizeof(keyed_leaf));
    if (!leaves) return -2;
    uint8_t enc[64], inner[32];
    memset(enc, 0, 12);
    for (size_t i = 0; i < n; i++) {
        const char *h = hex + 40 * i;
        for (int k = 0; k < 20; k++) {
            int hi = hexval(h[2 * k]), lo = hexval(h[2 * k + 1]);
            if (hi < 0 || lo < 0) {
                free(leaves);
                return -1;
            }
            enc[12 + k] = (uint8_t)(hi << 4 | lo);
        }
        memcpy(enc + 32, amounts + 32 * i, 32);
        if (keccak256(&k, enc, 64, inner) || keccak256(&k, inner, 32, leaves[i].hash)) {
            free(leaves);
            return -3;
        }
        leaves[i].index = i;
    }
    /* equal hashes (duplicate leaves, when allowed) keep input order, like Python's stable sort */
    qsort(leaves, n, sizeof(keyed_leaf), by_hash_then_index);
    size_t last = 2 * n - 2;
    for (size_t k = 0; k < n; k++) {
        memcpy(nodes + 32 * (last - k), leaves[k].hash, 32);
        tree_index[leaves[k].index] = (int64_t)(last - k);
    }
    free(leaves);
    uint8_t pair[64];
    for (size_t i = n - 1; i-- > 0;) {
        const uint8_t *a = nodes + 32 * (2 * i + 1), *b = nodes + 32 * (2 * i + 2);
        if (memcmp(a, b, 32) < 0) {
            memcpy(pair, a, 32);
            memcpy(pair + 32, b, 32);
        } else {
            memcpy(pair, b, 32);
            memcpy(pair + 32, a, 32);
        }
        if (keccak256(&k, pair, 64, nodes + 32 * i)) return -3;
    }
    return 0;
}
