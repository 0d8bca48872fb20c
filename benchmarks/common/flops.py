"""Model FLOPs: the matmul work of the Transformer on padded shapes (no Keras imported here).

Counts matmuls only (2 FLOPs per multiply-add); a training step is the forward pass x 3
(forward + backward). Per layer, with batch B, source length S, target length T, d_model d,
d_ff f, N layers a side and target vocabulary V:
  encoder:  B*S*(4 d^2 + 2 d f)             projections Q,K,V,O and the FFN
            + 2 B S^2 d                      Q K^T and weights @ V
  decoder:  B*T*(4 d^2 + 2 d^2 + 2 d f)     self Q,K,V,O; cross Q,O; FFN
            + B*S*2 d^2                      cross K,V over the source
            + 2 B T^2 d + 2 B T S d          self and cross attention
  output:   B*T*d*V                          logits against the tied embedding
Embedding lookups, norms, softmax and the loss are left out (they are not matmuls).
"""


def forward_macs(config, batch, source_length, target_length, encoder=True):
    """Multiply-adds of one forward pass by part of the model (the terms above);
    `encoder=False` leaves the encoder out (a decoder pass over an encoded source)."""
    d, f, n, v = config.d_model, config.d_ff, config.num_layers, config.target_vocab_size
    b, s, t = batch, source_length, target_length
    e = 1 if encoder else 0
    return {
        "attention projections": n * (e * b * s * 4 * d * d + b * t * 6 * d * d
                                      + b * s * 2 * d * d),
        "attention scores + weighted sums": n * (e * 2 * b * s * s * d + 2 * b * t * t * d
                                                 + 2 * b * t * s * d),
        "feed-forward": n * (e * b * s * 2 * d * f + b * t * 2 * d * f),
        "output projection (vocabulary)": b * t * d * v,
    }


def transformer_train_flops(config, batch, source_length, target_length):
    """Model FLOPs of one training step on padded (batch, length) shapes (the work done)."""
    return 2 * 3 * sum(forward_macs(config, batch, source_length, target_length).values())


def flop_shares(config, batch, source_length, target_length):
    """Shares of a training step's model FLOPs by part of the model."""
    parts = forward_macs(config, batch, source_length, target_length)
    total = sum(parts.values())
    return {key: value / total for key, value in parts.items()}


def uncached_decode_gflop(config, batch, source_length, length):
    """Forward matmul work (GFLOP) of greedy_decode_uncached: `length` steps, each a full
    decoder pass over the (length + 1)-wide buffer with logits at every position."""
    per_step = forward_macs(config, batch, source_length, length + 1, encoder=False)
    return 2 * length * sum(per_step.values()) / 1e9
