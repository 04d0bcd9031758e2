using static TorchSharp.torch;

namespace ContinualMoE.Backbones.Language;

/// <summary>What one forward pass of a decoder language model should do beyond the plain model.</summary>
public sealed class LmForwardOptions
{
    /// <summary>Low-rank and other linear adapters: every adaptable layer adds the provider's delta (see
    /// <see cref="ILinearAdapterProvider"/>). Null: the plain model.</summary>
    public ILinearAdapterProvider? Adapters { get; init; }

    /// <summary>Keys and values of earlier positions; the new positions continue after them and are appended.
    /// Null: the ids are the whole sequence.</summary>
    public KeyValueCache? Cache { get; init; }

    /// <summary>Per-block prefix keys/values in the per-head space [B|1, H, L, d] that every position attends to
    /// (prefix tuning). Only plain keys and values are supported for language models.</summary>
    public IAttentionPrefixProvider? Prefixes { get; init; }

    /// <summary>False skips the vocabulary projection (for methods that only need hidden states).</summary>
    public bool ComputeLogits { get; init; } = true;

    /// <summary>Logits are computed for the new positions from this index on (0: all). Generation needs only the last
    /// position and scoring only the label positions: with a vocabulary of 150k, logits of a long prompt would otherwise
    /// take more memory than the model's activations.</summary>
    public long FirstLogitPosition { get; init; }
}

/// <summary>Logits [B, T - FirstLogitPosition, V] in float32 (null when not computed) and the final normalised hidden states [B, T, D].</summary>
public sealed record LmOutput(Tensor? Logits, Tensor Hidden) : IDisposable
{
    public void Dispose()
    {
        Logits?.Dispose();
        Hidden.Dispose();
    }
}
