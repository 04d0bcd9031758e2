using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ContinualMoE.Backbones.Language;

/// <summary>
/// The attention core shared by GPT-2 and LLaMA: cache, optional prefix, grouped-query expansion and causal
/// scaled-dot-product attention (libtorch's fused kernel, or written out where that kernel is slow; see ScaledDotProduct).
/// </summary>
internal static class CausalAttention
{
    /// <summary>
    /// q [B, H, T, d]; k, v [B, Hkv, T, d] of the new positions. Returns the attended values [B, H, T, d].
    /// Position i of the new tokens sees every prefix entry, every cached position and new positions up to i.
    /// </summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, int block, LmForwardOptions options)
    {
        long batch = q.shape[0], heads = q.shape[1], tokens = q.shape[2];
        long past = options.Cache?.Length ?? 0;
        if (options.Cache is { } cache) (k, v) = cache.Append(block, k, v);
        long prefixLength = 0;
        if (options.Prefixes?.ForBlock(block, q) is { } prefix)
        {
            if (prefix.Keys is null || prefix.Logits is not null || prefix.LogitTransform is not null || prefix.ObserveLogits is not null)
                throw new ContinualMoEException("language models support only plain prefix keys and values (no logits, transforms or observers)");
            prefixLength = prefix.Length;
            // Prefixes have a key and value per query head; without one, ScaledDotProduct takes the key/value heads as they are.
            k = torch.cat([ExpandBatch(prefix.Keys, batch).to(k.dtype), ExpandKeyValueHeads(k, heads)], dim: 2);
            v = torch.cat([ExpandBatch(prefix.Values, batch).to(v.dtype), ExpandKeyValueHeads(v, heads)], dim: 2);
        }

        if (options.AttentionMask is not null || options.NewTokenAttention is not null)
            return ScaledDotProduct(q, k, v, Allowed(options, prefixLength, past, tokens));
        if (prefixLength == 0 && past == 0)
            return ScaledDotProduct(q, k, v, null, causal: true);
        if (tokens == 1)
            return ScaledDotProduct(q, k, v, null); // the newest position sees everything
        // libtorch's is_causal aligns the mask top-left; with earlier keys it must be aligned bottom-right.
        var keyPositions = Scalars.Arange(k.shape[2], dtype: ScalarType.Int64);
        var queryPositions = Scalars.Arange(prefixLength + past, prefixLength + past + tokens, dtype: ScalarType.Int64).unsqueeze(1);
        var allowed = keyPositions.unsqueeze(0).le(queryPositions);                     // [T, L + past + T]
        return ScaledDotProduct(q, k, v, allowed);
    }

    /// <summary>
    /// On the CPU, attention is written out in float32, softmax(q k^T / sqrt(d) + mask) v, on float32 copies of q, k and v
    /// cast back, whenever the fused kernel loses: always in bf16/fp16, and in float32 while gradients are recorded.
    /// float32 without gradients (evaluation, generation) keeps libtorch's fused kernel, which is faster there.
    /// Measured with libtorch 2.10 on two threads at head width 24: the bf16 fused kernels were 4x slower than float32
    /// for forward + backward, and the float32 flash kernel runs slower with two threads than with one (forward + backward
    /// of 8 x 4 heads x 64 tokens x 24: 2.1 ms with two threads, 1.0 ms with one; written out: 0.7 and 1.0 ms). Writing
    /// float32 training attention out raised LoRA training of the default GPT-2 and of a LLaMA of its size by 9-26 %
    /// (docs/benchmarks.md, sessions 10-11). Softmax in float32 is also what transformers' eager attention does for
    /// half-precision models. q [B, H, T, d]; k, v [B, Hkv, L, d] with H a multiple of Hkv; allowed [T, L] or [B|1, 1, T, L].
    /// </summary>
    internal static Tensor ScaledDotProduct(Tensor q, Tensor k, Tensor v, Tensor? allowed, bool causal = false)
    {
        if (!WritesOut(q))
            return functional.scaled_dot_product_attention(q, ExpandKeyValueHeads(k, q.shape[1]), ExpandKeyValueHeads(v, q.shape[1]), allowed, 0.0, causal);
        using var scope = NewDisposeScope();
        var dtype = q.dtype;
        long batch = q.shape[0], heads = q.shape[1], tokens = q.shape[2], dim = q.shape[3], keys = k.shape[2];
        // Grouped-query attention without copying keys and values per query head: the G query heads that share a key/value
        // head become G x T rows of one [B, Hkv, G T, d] query, whose mask repeats the T rows' mask G times.
        long groups = heads / k.shape[1];
        var blocked = causal
            ? torch.ones(tokens, keys, dtype: ScalarType.Bool).triu(1)                           // top-left aligned, as is_causal
            : allowed?.logical_not();
        if (groups > 1)
        {
            q = q.reshape(batch, k.shape[1], groups * tokens, dim);
            if (blocked is not null) blocked = blocked.dim() == 4 ? blocked.repeat(1, 1, groups, 1) : blocked.repeat(groups, 1);
        }
        var scores = q.to(ScalarType.Float32).matmul(k.to(ScalarType.Float32).transpose(-1, -2))
            .mul(Scalars.Of(1.0 / Math.Sqrt(dim)));                                                // [B, Hkv, G T, L]
        // An additive mask: add's backward passes the gradient through, where masked_fill's copies it once more.
        if (blocked is not null) scores = scores.Plus(torch.zeros(blocked.shape, dtype: ScalarType.Float32).masked_fill_(blocked, Scalars.NegativeInfinity));
        var attended = scores.softmax(-1).matmul(v.to(ScalarType.Float32)).to(dtype);
        return attended.reshape(batch, heads, tokens, dim).MoveToOuterDisposeScope();
    }

    /// <summary>Whether <see cref="ScaledDotProduct"/> writes attention out for this query rather than calling the fused kernel.</summary>
    private static bool WritesOut(Tensor q) =>
        ComputePrecision.FusedAttentionIsSlower(q) || (q.device_type == DeviceType.CPU && torch.is_grad_enabled());

    /// <summary>
    /// Which keys each new position attends to, [B|1, 1, T, L + past + T] over prefix, cached and new keys: every prefix
    /// key, the cached and new keys the attention mask marks real, and among the new keys the causal pattern (or the
    /// given new-token pattern). A padded position would see no key at all (softmax of nothing is NaN), so it sees
    /// itself; no real position reads a padded one.
    /// </summary>
    private static Tensor Allowed(LmForwardOptions options, long prefixLength, long past, long tokens)
    {
        var newKeys = options.NewTokenAttention?.to(ScalarType.Bool)
                      ?? Scalars.Arange(tokens, dtype: ScalarType.Int64).unsqueeze(0).le(Scalars.Arange(tokens, dtype: ScalarType.Int64).unsqueeze(1));
        if (newKeys.dim() == 2) newKeys = newKeys.unsqueeze(0);                                     // [B|1, T, T]
        var rows = newKeys.shape[0];
        var allowed = past == 0 ? newKeys : torch.cat([torch.ones(rows, tokens, past, dtype: ScalarType.Bool), newKeys], dim: 2);
        var itself = Scalars.Arange(past + tokens, dtype: ScalarType.Int64).unsqueeze(0)
            .eq(Scalars.Arange(past, past + tokens, dtype: ScalarType.Int64).unsqueeze(1));           // [T, past + T]
        if (options.AttentionMask is { } mask) allowed = allowed.logical_and(mask.to(ScalarType.Bool).unsqueeze(1));
        allowed = allowed.logical_or(itself);
        if (prefixLength > 0) allowed = torch.cat([torch.ones(allowed.shape[0], tokens, prefixLength, dtype: ScalarType.Bool), allowed], dim: 2);
        return allowed.unsqueeze(1);
    }

    /// <summary>Grouped-query attention (Ainslie et al. 2023): each key/value head serves Heads/Hkv consecutive query heads.</summary>
    private static Tensor ExpandKeyValueHeads(Tensor t, long heads)
    {
        long keyValueHeads = t.shape[1];
        if (keyValueHeads == heads) return t;
        long batch = t.shape[0], length = t.shape[2], dim = t.shape[3];
        return t.unsqueeze(2).expand(batch, keyValueHeads, heads / keyValueHeads, length, dim).reshape(batch, heads, length, dim);
    }

    private static Tensor ExpandBatch(Tensor t, long batch) =>
        t.shape[0] == batch ? t : t.expand(batch, t.shape[1], t.shape[2], t.shape[3]);
}
