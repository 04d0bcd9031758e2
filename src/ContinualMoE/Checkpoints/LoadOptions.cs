using static TorchSharp.torch;

namespace ContinualMoE.Checkpoints;

/// <summary>How <see cref="StateDictLoader.Load"/> treats tensors that do not fit the module.</summary>
public sealed class LoadOptions
{
    /// <summary>
    /// Called when <c>pos_embed</c> has a different shape in the file (e.g. another image size): receives the file's
    /// tensor and the module's shape and returns a tensor of that shape. Without it the difference is a shape mismatch.
    /// </summary>
    public Func<Tensor, long[], Tensor>? PositionEmbeddingResizer { get; init; }

    /// <summary>When true, shape mismatches other than the head are skipped and reported instead of thrown.</summary>
    public bool AllowShapeMismatches { get; init; }

    /// <summary>When true (the default), a classifier head of another size is left untouched instead of being an error.</summary>
    public bool SkipMismatchedHead { get; init; } = true;

    /// <summary>Safetensors checkpoints: point parameters of the stored dtype at a copy-on-write memory map of the file
    /// instead of copying (see <see cref="SafeTensorsFile.ReadInto"/>).</summary>
    public bool MemoryMap { get; init; }

    public static LoadOptions Default { get; } = new();
}
