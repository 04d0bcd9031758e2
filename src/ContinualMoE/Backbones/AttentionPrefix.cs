using static TorchSharp.torch;

namespace ContinualMoE.Backbones;

/// <summary>
/// What a method adds to one block's self-attention: L extra key/value "experts" per head that every real token
/// attends to (prefix tuning, Li and Liang 2021; read as new experts of the attention mixture in NoRGa, Le et al. 2024).
/// Shapes: batch B (or 1 to share across the batch), heads H, prefix length L, head width d.
/// Keys and values live in the projected per-head space: they do not pass through the frozen qkv projection.
/// </summary>
public sealed class AttentionPrefix
{
    /// <summary>Prefix keys [B|1, H, L, d]; the prefix logits are then q k_p^T / sqrt(d) per query row.
    /// Null when <see cref="Logits"/> is given instead.</summary>
    public Tensor? Keys { get; init; }

    /// <summary>Prefix values [B|1, H, L, d], prepended to the token values.</summary>
    public required Tensor Values { get; init; }

    /// <summary>Prefix logits supplied directly, already scaled: [B|1, H, N|1, L]. SMoPE uses one aggregated
    /// score per expert shared by all query rows ([B, H, 1, L]).</summary>
    public Tensor? Logits { get; init; }

    /// <summary>Applied to the (scaled) prefix logits only, before the joint softmax over prefix and token logits.
    /// NoRGa's non-linear residual gate s + alpha * act(tau * s) is one.</summary>
    public Func<Tensor, Tensor>? LogitTransform { get; init; }

    /// <summary>Receives the final prefix logits [B, H, N, L] of this block (after the transform). The block runs in a
    /// TorchSharp dispose scope: an observer that keeps the tensor must call <c>DetachFromDisposeScope()</c> on it.</summary>
    public Action<Tensor>? ObserveLogits { get; init; }

    public long Length => Values.shape[2];

    /// <summary>True when the prefix logits must be materialised (supplied, transformed or observed): attention then
    /// takes the explicit softmax instead of libtorch's fused kernel, which never exposes its logits.</summary>
    public bool NeedsExplicitLogits => Keys is null || Logits is not null || LogitTransform is not null || ObserveLogits is not null;

    /// <summary>Standard prefix tuning: keys and values, nothing else.</summary>
    public static AttentionPrefix FromKeysAndValues(Tensor keys, Tensor values) => new() { Keys = keys, Values = values };
}

/// <summary>
/// Supplies each block's prefix during one forward pass. The block hands over its per-head queries
/// [B, H, N, d] (unscaled, straight from the frozen qkv projection) so that a method can route on them.
/// Return null for a block without prefix. The call happens inside the block's dispose scope: tensors created here
/// are freed when the block is done unless the provider detaches them (e.g. routing scores kept for a loss).
/// </summary>
public interface IAttentionPrefixProvider
{
    AttentionPrefix? ForBlock(int blockIndex, Tensor queries);
}
