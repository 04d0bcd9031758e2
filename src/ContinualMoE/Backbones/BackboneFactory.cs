using ContinualMoE.Checkpoints;

namespace ContinualMoE.Backbones;

/// <summary>
/// Builds a frozen backbone from a registry config and, optionally, a weights file in any supported format
/// (safetensors with timm or transformers names, Google's ViT .npz). The position embedding is resampled when the
/// file's patch grid differs from the config's.
/// </summary>
public static class BackboneFactory
{
    public static (VisionTransformer Model, LoadReport? Report) Create(string configName, string? weightsPath, int seed)
    {
        var config = VitRegistry.Get(configName);
        if (weightsPath is null) return (new VisionTransformer(config, seed), null);
        var (tensors, _) = CheckpointReader.ReadTimmStateDict(weightsPath);
        var classCount = tensors.TryGetValue("head.weight", out var head) ? (int)head.shape[0] : config.ClassCount;
        var model = new VisionTransformer(config with { ClassCount = classCount }, seed);
        var report = StateDictLoader.Load(model, tensors, new LoadOptions
        {
            PositionEmbeddingResizer = (pos, shape) => VisionTransformer.ResizePositionEmbedding(pos, config.GridSize),
        });
        foreach (var t in tensors.Values) t.Dispose();
        if (report.Missing.Count > 0)
            throw ContinualMoEException.ForFile(weightsPath, $"weights lack {report.Missing.Count} backbone parameters of {config.Name}: {string.Join(", ", report.Missing.Take(5))}");
        return (model, report);
    }
}
