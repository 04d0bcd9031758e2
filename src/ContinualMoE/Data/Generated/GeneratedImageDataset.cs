namespace ContinualMoE.Data.Generated;

/// <summary>
/// A procedurally generated image classification dataset that needs no files. Class k is drawn by the recipe
/// <c>RecipeIds[k]</c> (see <see cref="PatternRecipe"/>); sample j of a class is rendered on demand from
/// <c>Seeds.Combine(seed, recipeId, splitTag, j)</c>, so nothing is stored and every run produces the same pixels.
/// Per-sample variation: shift (±12% of the side), scale (0.85–1.15), grating rotation (±0.2 rad) and random phase,
/// per-channel colour gain (0.85–1.15), a random background colour (half of it is the class tint), one distractor blob
/// of random colour and place, and uniform pixel noise (±0.08).
/// Sample index i belongs to class i / perClass.
/// </summary>
public sealed class GeneratedImageDataset : IImageDataset
{
    private readonly int _seed;
    private readonly int _perClass;
    private readonly int _splitTag;
    private readonly int[] _recipeIds;
    private readonly PatternRecipe[] _recipes;

    public GeneratedImageDataset(string name, int seed, IReadOnlyList<int> recipeIds, int perClass, int splitTag, int size = 32)
    {
        if (recipeIds.Count == 0) throw new ContinualMoEException("a generated dataset needs at least one class");
        if (perClass <= 0) throw new ContinualMoEException($"images per class must be positive, got {perClass}");
        if (size < 8) throw new ContinualMoEException($"generated image size must be at least 8, got {size}");
        if (recipeIds.Distinct().Count() != recipeIds.Count) throw new ContinualMoEException("generated class recipes must be distinct");
        Name = name;
        Size = size;
        _seed = seed;
        _perClass = perClass;
        _splitTag = splitTag;
        _recipeIds = recipeIds.ToArray();
        _recipes = _recipeIds.Select(id => PatternRecipe.Create(seed, id)).ToArray();
        ClassNames = _recipeIds.Select(id => $"pattern-{id}").ToArray();
    }

    public string Name { get; }
    public int Size { get; }
    public IReadOnlyList<string> ClassNames { get; }
    public int Count => _recipeIds.Length * _perClass;

    /// <summary>The recipe behind each class; recipes with equal ids (and seed) draw the same class.</summary>
    public IReadOnlyList<int> RecipeIds => _recipeIds;

    public int GetLabel(int index)
    {
        this.CheckIndex(index);
        return index / _perClass;
    }

    public RawImage GetImage(int index)
    {
        this.CheckIndex(index);
        var label = index / _perClass;
        var recipe = _recipes[label];
        var random = new Random(Seeds.Combine(_seed, _recipeIds[label], _splitTag, index % _perClass));
        float Uniform(float low, float high) => low + (float)random.NextDouble() * (high - low);

        var shiftX = Uniform(-0.12f, 0.12f);
        var shiftY = Uniform(-0.12f, 0.12f);
        var inverseScale = 1f / Uniform(0.85f, 1.15f);
        var angle = recipe.GratingAngle + Uniform(-0.2f, 0.2f);
        var phase = Uniform(0, 2 * MathF.PI);
        var (cos, sin) = (MathF.Cos(angle), MathF.Sin(angle));
        var frequency = 2 * MathF.PI * recipe.GratingFrequency;
        float[] gain = [Uniform(0.85f, 1.15f), Uniform(0.85f, 1.15f), Uniform(0.85f, 1.15f)];
        var background = new float[3];
        for (var c = 0; c < 3; c++) background[c] = 0.5f * recipe.Tint[c] + 0.5f * Uniform(0.2f, 0.8f);
        var distractor = new PatternRecipe.Blob(Uniform(0.1f, 0.9f), Uniform(0.1f, 0.9f), Uniform(0.06f, 0.15f),
            [Uniform(-0.4f, 0.4f), Uniform(-0.4f, 0.4f), Uniform(-0.4f, 0.4f)]);

        var size = Size;
        var pixels = new byte[size * size * 3];
        var blobs = recipe.Blobs;
        for (var y = 0; y < size; y++)
        {
            // Object coordinates: undo the sample's shift and scale around the image centre.
            var v = (y + 0.5f) / size;
            var oy = (v - 0.5f - shiftY) * inverseScale + 0.5f;
            for (var x = 0; x < size; x++)
            {
                var u = (x + 0.5f) / size;
                var ox = (u - 0.5f - shiftX) * inverseScale + 0.5f;
                var wave = MathF.Sin(frequency * (ox * cos + oy * sin) + phase);
                var b0 = BlobWeight(blobs[0], ox, oy);
                var b1 = BlobWeight(blobs[1], ox, oy);
                var d = BlobWeight(distractor, u, v);
                var offset = (y * size + x) * 3;
                for (var c = 0; c < 3; c++)
                {
                    var value = background[c]
                                + wave * recipe.GratingColour[c]
                                + b0 * blobs[0].Colour[c] + b1 * blobs[1].Colour[c]
                                + d * distractor.Colour[c];
                    value = value * gain[c] + Uniform(-0.08f, 0.08f);
                    pixels[offset + c] = (byte)Math.Clamp((int)(value * 255f + 0.5f), 0, 255);
                }
            }
        }
        return new RawImage(size, size, 3, pixels);
    }

    private static float BlobWeight(in PatternRecipe.Blob blob, float x, float y)
    {
        float dx = x - blob.X, dy = y - blob.Y;
        return MathF.Exp(-(dx * dx + dy * dy) / (2 * blob.Radius * blob.Radius));
    }
}
