namespace ContinualMoE.Data.Transforms;

/// <summary>Replicates a grey channel to three, so grey datasets (MNIST) fit RGB models. RGB passes through.</summary>
public sealed class GreyToRgb : IImageTransform
{
    public ImageBuffer Apply(ImageBuffer image, AugmentationRandom random)
    {
        if (image.Channels == 3) return image;
        if (image.Channels != 1) throw new ContinualMoEException($"GreyToRgb expects 1 or 3 channels, got {image.Channels}");
        var plane = image.Height * image.Width;
        var rgb = image.Rent(3, image.Height, image.Width);
        for (var c = 0; c < 3; c++) Array.Copy(image.Data, 0, rgb.Data, c * plane, plane);
        return rgb;
    }
}

/// <summary>Resizes to exactly height x width (aspect ratio not kept; see <see cref="Interpolation"/> for the semantics).</summary>
public sealed class Resize(int height, int width, ResampleMode mode = ResampleMode.Bilinear) : IImageTransform
{
    public ImageBuffer Apply(ImageBuffer image, AugmentationRandom random) => Interpolation.Resize(image, height, width, mode);
    public (int Height, int Width)? OutputSize => (height, width);
}

/// <summary>
/// torchvision <c>Resize(size)</c> with an int: the shorter side becomes <paramref name="size"/>, the longer one
/// int(size x long / short), so the aspect ratio is kept.
/// </summary>
public sealed class ResizeShorterSide(int size, ResampleMode mode = ResampleMode.Bilinear) : IImageTransform
{
    public ImageBuffer Apply(ImageBuffer image, AugmentationRandom random)
    {
        var (height, width) = OutputFor(image.Height, image.Width);
        return Interpolation.Resize(image, height, width, mode);
    }

    public (int Height, int Width) OutputFor(int height, int width) => width <= height
        ? ((int)((long)size * height / width), size)
        : (size, (int)((long)size * width / height));
}

/// <summary>Crops the centre height x width (torchvision CenterCrop rounding: offset = round((in - out) / 2)).</summary>
public sealed class CenterCrop(int height, int width) : IImageTransform
{
    public ImageBuffer Apply(ImageBuffer image, AugmentationRandom random)
    {
        if (height > image.Height || width > image.Width)
            throw new ContinualMoEException($"CenterCrop {height}x{width} is larger than the {image.Height}x{image.Width} image");
        var top = (int)Math.Round((image.Height - height) / 2.0);
        var left = (int)Math.Round((image.Width - width) / 2.0);
        return Interpolation.Crop(image, top, left, height, width);
    }

    public (int Height, int Width)? OutputSize => (height, width);
}

/// <summary>
/// torchvision's RandomResizedCrop: up to 10 tries to draw a crop whose area is a uniform fraction in
/// <paramref name="scaleMin"/>..<paramref name="scaleMax"/> of the image and whose aspect ratio is log-uniform in
/// ratio range; if none fits, falls back to the largest central crop with the ratio clamped into range. The crop is
/// then resized to size x size.
/// </summary>
public sealed class RandomResizedCrop(int size, double scaleMin = 0.08, double scaleMax = 1.0,
    double ratioMin = 3.0 / 4.0, double ratioMax = 4.0 / 3.0, ResampleMode mode = ResampleMode.Bilinear) : IImageTransform
{
    public ImageBuffer Apply(ImageBuffer image, AugmentationRandom random)
    {
        var (top, left, h, w) = SampleCrop(image.Height, image.Width, random);
        var crop = Interpolation.Crop(image, top, left, h, w);
        var resized = Interpolation.Resize(crop, size, size, mode);
        if (!ReferenceEquals(resized.Data, crop.Data)) crop.Return();
        return resized;
    }

    public (int Height, int Width)? OutputSize => (size, size);

    /// <summary>torchvision 0.14 RandomResizedCrop.get_params: the same draws in the same order (area fraction, aspect
    /// ratio, then top and left of an accepted box), Python's round-half-to-even, then the central fallback.</summary>
    public (int Top, int Left, int Height, int Width) SampleCrop(int height, int width, AugmentationRandom random)
    {
        double area = height * width;
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var targetArea = area * random.Uniform(scaleMin, scaleMax);
            var aspect = random.LogUniform(ratioMin, ratioMax);
            var w = (int)Math.Round(Math.Sqrt(targetArea * aspect));
            var h = (int)Math.Round(Math.Sqrt(targetArea / aspect));
            if (w > 0 && h > 0 && w <= width && h <= height)
            {
                var top = random.Integer(height - h + 1);
                return (top, random.Integer(width - w + 1), h, w);
            }
        }
        // Fallback: central crop of the whole image, aspect ratio clamped into range.
        var inRatio = (double)width / height;
        int cropW, cropH;
        if (inRatio < ratioMin) { cropW = width; cropH = (int)Math.Round(cropW / ratioMin); }
        else if (inRatio > ratioMax) { cropH = height; cropW = (int)Math.Round(cropH * ratioMax); }
        else { cropW = width; cropH = height; }
        cropH = Math.Clamp(cropH, 1, height);
        cropW = Math.Clamp(cropW, 1, width);
        return ((height - cropH) / 2, (width - cropW) / 2, cropH, cropW);
    }
}

/// <summary>Mirrors left-right with probability <paramref name="probability"/>.</summary>
public sealed class HorizontalFlip(double probability = 0.5) : IImageTransform
{
    public ImageBuffer Apply(ImageBuffer image, AugmentationRandom random)
    {
        if (!random.Bernoulli(probability)) return image;
        var flipped = image.Rent(image.Channels, image.Height, image.Width);
        var data = flipped.Data;
        for (var row = 0; row < image.Channels * image.Height; row++)
        {
            var mirrored = data.AsSpan(row * image.Width, image.Width);
            image.Data.AsSpan(row * image.Width, image.Width).CopyTo(mirrored);
            mirrored.Reverse();
        }
        return flipped;
    }
}

/// <summary>
/// torchvision ColorJitter(brightness=s): multiplies every value by a factor uniform in [max(0, 1 - s), 1 + s] and
/// clamps to [0, MaxValue]. <paramref name="truncateToBytes"/>: on byte values, truncates the product to an integer as
/// PIL's ImageEnhance.Brightness (Image.blend with black) does on the official pipelines' PIL images.
/// </summary>
public sealed class BrightnessJitter(double strength, bool truncateToBytes = false) : IImageTransform
{
    public ImageBuffer Apply(ImageBuffer image, AugmentationRandom random)
    {
        random.ColorJitterOrder();
        var factor = (float)random.Uniform(Math.Max(0, 1 - strength), 1 + strength);
        var jittered = image.Rent(image.Channels, image.Height, image.Width);
        var data = jittered.Data;
        var truncate = truncateToBytes && image.MaxValue == 255f;
        for (var i = 0; i < image.Length; i++)
        {
            var value = image.Data[i] * factor;
            data[i] = Math.Clamp(truncate ? MathF.Floor(value) : value, 0f, image.MaxValue);
        }
        return jittered;
    }
}

/// <summary>Scales byte values 0..255 to 0..1 (torchvision ToTensor). Put it before <see cref="Normalize"/>.</summary>
public sealed class ScaleToUnit : IImageTransform
{
    public ImageBuffer Apply(ImageBuffer image, AugmentationRandom random)
    {
        if (image.MaxValue == 1f) return image;
        var scale = 1f / image.MaxValue;
        var unit = ImageBuffer.Rent(image.Channels, image.Height, image.Width, 1f);
        var data = unit.Data;
        for (var i = 0; i < image.Length; i++) data[i] = image.Data[i] * scale;
        return unit;
    }
}

/// <summary>Per-channel (x - mean) / std, on values already scaled to 0..1.</summary>
public sealed class Normalize : IImageTransform
{
    private readonly float[] _mean, _std;

    public Normalize(IReadOnlyList<float> mean, IReadOnlyList<float> std)
    {
        if (mean.Count != std.Count) throw new ArgumentException("mean and std differ in length");
        if (std.Any(s => s <= 0)) throw new ArgumentException("std must be positive");
        _mean = mean.ToArray();
        _std = std.ToArray();
    }

    public ImageBuffer Apply(ImageBuffer image, AugmentationRandom random) => Normalized(image, 1f);

    /// <summary><see cref="ScaleToUnit"/> then this, in one pass: each value is rounded to float32 after the scaling
    /// and after each step exactly as the two passes do, so the result is bit for bit the same.</summary>
    internal ImageBuffer ApplyAfterScaling(ImageBuffer image) => Normalized(image, image.MaxValue == 1f ? 1f : 1f / image.MaxValue);

    private ImageBuffer Normalized(ImageBuffer image, float scale)
    {
        if (image.Channels != _mean.Length)
            throw new ContinualMoEException($"Normalize has {_mean.Length} channel statistics but the image has {image.Channels} channels");
        var plane = image.Height * image.Width;
        var normalized = ImageBuffer.Rent(image.Channels, image.Height, image.Width, 1f);
        var data = normalized.Data;
        var source = image.Data;
        for (var c = 0; c < image.Channels; c++)
        {
            float mean = _mean[c], inverse = 1f / _std[c];
            var from = source.AsSpan(c * plane, plane);
            var to = data.AsSpan(c * plane, plane);
            if (scale == 1f) for (var p = 0; p < from.Length; p++) to[p] = (from[p] - mean) * inverse;
            else for (var p = 0; p < from.Length; p++) to[p] = (from[p] * scale - mean) * inverse;
        }
        return normalized;
    }
}
