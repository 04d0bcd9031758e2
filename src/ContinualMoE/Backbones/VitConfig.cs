namespace ContinualMoE.Backbones;

/// <summary>
/// The geometry of a timm <c>VisionTransformer</c> with class-token pooling (timm's default for the ViT family).
/// </summary>
public sealed record VitConfig(
    string Name,
    int ImageSize,
    int PatchSize,
    int EmbedDim,
    int Depth,
    int Heads,
    double MlpRatio = 4.0,
    int InChannels = 3,
    int ClassCount = 1000,
    double LayerNormEps = 1e-6,
    int? MlpWidth = null)
{
    public int GridSize => ImageSize / PatchSize;
    public int PatchCount => GridSize * GridSize;
    public int HeadDim => EmbedDim / Heads;
    /// <summary>timm's int(dim * mlp_ratio), or the width read off a checkpoint (<see cref="MlpWidth"/>), which no ratio may round to.</summary>
    public int MlpHidden => MlpWidth ?? (int)(EmbedDim * MlpRatio);

    /// <summary>Validates the geometry; a bad config is a user error, not a libtorch crash later.</summary>
    public VitConfig Validated()
    {
        if (ImageSize <= 0 || PatchSize <= 0 || ImageSize % PatchSize != 0)
            throw new ContinualMoEException($"ViT config '{Name}': image size {ImageSize} is not a multiple of patch size {PatchSize}");
        if (EmbedDim % Heads != 0)
            throw new ContinualMoEException($"ViT config '{Name}': embedding width {EmbedDim} is not divisible by {Heads} heads");
        if (InChannels <= 0 || MlpHidden <= 0) throw new ContinualMoEException($"ViT config '{Name}': channels and MLP width must be positive");
        if (Depth <= 0) throw new ContinualMoEException($"ViT config '{Name}': depth must be positive");
        return this;
    }

    /// <summary>
    /// Multiply-accumulates of one forward pass for one image, times two (FLOPs), counting the matmuls and the
    /// patch projection (LayerNorm, softmax and GELU are a few percent and left out, as in the papers' GFLOPs).
    /// <paramref name="extraKeys"/> is the number of prefix keys per block, <paramref name="extraTokens"/> prompt tokens.
    /// </summary>
    public double ForwardFlops(int extraKeys = 0, int extraTokens = 0)
    {
        double tokens = 1 + PatchCount + extraTokens;
        double d = EmbedDim;
        double patch = PatchCount * (InChannels * PatchSize * PatchSize) * d;
        double perBlock = tokens * d * 3 * d           // qkv
                          + tokens * (tokens + extraKeys) * d * 2  // scores and weighted values
                          + tokens * d * d             // output projection
                          + 2 * tokens * d * MlpHidden; // MLP
        return 2 * (patch + Depth * perBlock + d * ClassCount);
    }
}
