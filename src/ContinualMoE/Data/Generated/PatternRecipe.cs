namespace ContinualMoE.Data.Generated;

/// <summary>
/// The fixed, random definition of one generated class: an oriented sinusoidal grating (orientation, frequency, colour)
/// plus two coloured Gaussian blobs (position, radius, colour) over a weakly tinted background. Samples of the class
/// jitter all of these (see <see cref="GeneratedImageDataset"/>), so telling classes apart means recognising
/// orientation/frequency and blob layout, not matching pixels.
/// </summary>
internal sealed class PatternRecipe
{
    public required float GratingAngle { get; init; }
    public required float GratingFrequency { get; init; }   // cycles per image width
    public required float[] GratingColour { get; init; }    // signed RGB amplitude
    public required Blob[] Blobs { get; init; }
    public required float[] Tint { get; init; }             // background RGB, mixed with a random per-sample colour

    internal readonly record struct Blob(float X, float Y, float Radius, float[] Colour);

    public static PatternRecipe Create(int seed, int recipeId)
    {
        var random = new Random(Seeds.Combine(seed, recipeId, 0x5EED));
        float Uniform(float low, float high) => low + (float)random.NextDouble() * (high - low);
        float[] Colour(float low, float high) => [Uniform(low, high), Uniform(low, high), Uniform(low, high)];
        return new PatternRecipe
        {
            GratingAngle = Uniform(0, MathF.PI),
            GratingFrequency = Uniform(1.5f, 5f),
            GratingColour = Colour(-0.3f, 0.3f),
            Blobs = Enumerable.Range(0, 2)
                .Select(_ => new Blob(Uniform(0.2f, 0.8f), Uniform(0.2f, 0.8f), Uniform(0.08f, 0.2f), Colour(-0.5f, 0.5f)))
                .ToArray(),
            Tint = Colour(0.2f, 0.8f),
        };
    }
}
