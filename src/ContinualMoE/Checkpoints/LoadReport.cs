using System.Text;

namespace ContinualMoE.Checkpoints;

/// <summary>What <see cref="StateDictLoader.Load"/> did: which module tensors were filled and which names did not line up.</summary>
public sealed class LoadReport
{
    /// <summary>Module parameters and buffers whose values came from the file.</summary>
    public IReadOnlyList<string> Loaded { get; init; } = Array.Empty<string>();
    /// <summary>Module parameters and buffers that the file does not contain (left as they were).</summary>
    public IReadOnlyList<string> Missing { get; init; } = Array.Empty<string>();
    /// <summary>File tensors that the module has no parameter or buffer for.</summary>
    public IReadOnlyList<string> Unexpected { get; init; } = Array.Empty<string>();
    /// <summary>Tensors present in both with different shapes, not loaded (including a skipped head).</summary>
    public IReadOnlyList<ShapeMismatch> ShapeMismatches { get; init; } = Array.Empty<ShapeMismatch>();
    /// <summary>True when the file's classifier head had another shape and the module's head was kept.</summary>
    public bool SkippedHead { get; init; }
    /// <summary>True when pos_embed was adapted by <see cref="LoadOptions.PositionEmbeddingResizer"/>.</summary>
    public bool ResizedPositionEmbedding { get; init; }
    /// <summary>Human-readable notes, e.g. why the head was skipped.</summary>
    public IReadOnlyList<string> Messages { get; init; } = Array.Empty<string>();

    /// <summary>A concise multi-line summary; long name lists are shortened.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        text.Append($"loaded {Loaded.Count} tensors");
        if (Missing.Count > 0) text.Append($"\nmissing from file ({Missing.Count}): {Shorten(Missing)}");
        if (Unexpected.Count > 0) text.Append($"\nnot in module ({Unexpected.Count}): {Shorten(Unexpected)}");
        if (ShapeMismatches.Count > 0)
            text.Append($"\nshape mismatches ({ShapeMismatches.Count}): {Shorten(ShapeMismatches.Select(m => m.ToString()).ToList())}");
        foreach (var message in Messages) text.Append('\n').Append(message);
        return text.ToString();
    }

    public override string ToString() => Describe();

    private static string Shorten(IReadOnlyList<string> names, int max = 8) =>
        string.Join(", ", names.Take(max)) + (names.Count > max ? $", ... (+{names.Count - max} more)" : "");
}
