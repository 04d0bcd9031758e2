using TorchSharp;

namespace ContinualMoE.Data;

/// <summary>
/// One mini-batch: the inputs, Labels [B] int64, and the dataset indices of the samples. For images the inputs
/// (<see cref="Images"/>) are [B,3,H,W] float32; for text they are token ids [B,T] int64, right-padded, with
/// <see cref="AttentionMask"/> and <see cref="TargetMask"/> (docs/text-tasks.md).
/// The consumer owns the tensors and must dispose the batch (a <c>using</c> in the training loop).
/// </summary>
public sealed record Batch(torch.Tensor Images, torch.Tensor Labels, int[] Indices) : IDisposable
{
    public int Count => Indices.Length;

    /// <summary>The input tensor whatever the modality (the same tensor as <see cref="Images"/>).</summary>
    public torch.Tensor Inputs => Images;

    /// <summary>Text: [B,T] bool, true at real (not padding) tokens. Null for images.</summary>
    public torch.Tensor? AttentionMask { get; init; }

    /// <summary>Text: [B,T] bool, true at the tokens of the expected output (the causal-LM loss's targets; the prompt
    /// is the real tokens before them). Null for images.</summary>
    public torch.Tensor? TargetMask { get; init; }

    /// <summary>What throughput counts: images, or real tokens for text (tokens/s).</summary>
    public long ThroughputItems { get; init; } = -1;

    /// <summary>A batch of inputs without labels, for predicting on a bare input tensor (the caller keeps owning it:
    /// do not dispose this batch).</summary>
    public static Batch OfInputs(torch.Tensor inputs) =>
        new(inputs, torch.empty(0, torch.int64, inputs.device), Enumerable.Range(0, (int)inputs.shape[0]).ToArray());

    public long Items => ThroughputItems >= 0 ? ThroughputItems : Indices.Length;

    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
        AttentionMask?.Dispose();
        TargetMask?.Dispose();
    }
}

/// <summary>What the trainer and methods iterate over: the batches of one epoch, for any modality
/// (<see cref="DataLoader"/> for images, <see cref="Text.TextDataLoader"/> for text).</summary>
public interface IBatchLoader
{
    int BatchSize { get; }
    int BatchesPerEpoch { get; }
    IEnumerable<Batch> Epoch(int epoch);
}
