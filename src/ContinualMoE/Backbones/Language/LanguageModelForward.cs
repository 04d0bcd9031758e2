using static TorchSharp.torch;

namespace ContinualMoE.Backbones.Language;

/// <summary>What one forward pass of a decoder language model should do beyond the plain model.</summary>
public sealed record LmForwardOptions
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

    /// <summary>Which positions hold real tokens (true or 1) and which are padding, [B, past + T]: the cached positions
    /// and the new ones. Padded keys are never attended to, and a position's id is the number of real tokens before it
    /// (transformers' convention), so a left-padded row computes what the same row computes unpadded. Null: every
    /// position is real.</summary>
    public Tensor? AttentionMask { get; init; }

    /// <summary>Position ids of the new tokens [B, T] (learned positions of GPT-2, rotary angles of LLaMA). Null: derived
    /// from <see cref="AttentionMask"/>, or past, past + 1, ... without one.</summary>
    public Tensor? PositionIds { get; init; }

    /// <summary>Which new positions each new position may attend to, [T, T] or [B, T, T] (true: allowed), on top of every
    /// cached and prefix position. Null: causal (itself and earlier new positions). Label scoring packs all options
    /// after one cached prompt, each option seeing only its own tokens.</summary>
    public Tensor? NewTokenAttention { get; init; }

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
