using ContinualMoE.Checkpoints;

namespace ContinualMoE.Backbones;

/// <summary>
/// Builds a frozen backbone from <c>--backbone</c> (a registry name or an explicit geometry, see <see cref="BackboneSpec"/>)
/// and, optionally, weights in any supported format (safetensors with timm or transformers names, Google's ViT .npz, a
/// transformers model folder with config.json). Geometry the weights determine is checked against the setting or
/// inferred from them; the position embedding is resampled when the file's patch grid differs from the config's.
/// </summary>
public static class BackboneFactory
{
    public static (VisionTransformer Model, LoadReport? Report) Create(string backbone, string? weightsPath, int seed)
    {
        var spec = BackboneSpec.Parse(backbone);
        if (weightsPath is null) return (new VisionTransformer(spec.WithoutWeights(), seed), null);
        var checkpoint = CheckpointReader.Read(weightsPath);
        var tensors = checkpoint.Tensors;
        try
        {
            var config = spec.Resolve(checkpoint.Geometry, checkpoint.WeightsFile);
            var model = new VisionTransformer(config, seed);
            var report = StateDictLoader.Load(model, tensors, new LoadOptions
            {
                PositionEmbeddingResizer = (pos, shape) => VisionTransformer.ResizePositionEmbedding(pos, config.GridSize),
            });
            // A file without a classifier (transformers ViTModel, timm num_classes=0) is fine: methods bring their own heads.
            var missing = report.Missing.Where(name => !name.StartsWith("head.", StringComparison.Ordinal)).ToList();
            if (missing.Count > 0)
            {
                model.Dispose();
                throw ContinualMoEException.ForFile(checkpoint.WeightsFile,
                    $"weights lack {missing.Count} backbone parameters of {config.Name}: {string.Join(", ", missing.Take(5))}");
            }
            return (model, report);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }
}
