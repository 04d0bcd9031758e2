namespace ContinualMoE.Data;

/// <summary>
/// Fixed-size images held in one byte array (CIFAR, MNIST). Pixels are kept in the file's own layout, planar (CHW,
/// CIFAR) or interleaved (HWC, MNIST), so loading is a single read; <see cref="GetImage"/> converts one image at a time.
/// </summary>
public sealed class InMemoryImageDataset : IImageDataset
{
    private readonly byte[] _pixels;
    private readonly int[] _labels;
    private readonly bool _planar;
    private readonly int _imageBytes;

    public InMemoryImageDataset(string name, IReadOnlyList<string> classNames, int width, int height, int channels,
        byte[] pixels, int[] labels, bool planar)
    {
        _imageBytes = width * height * channels;
        if (pixels.Length != (long)_imageBytes * labels.Length)
            throw new ArgumentException($"{pixels.Length} pixel bytes do not hold {labels.Length} images of {width}x{height}x{channels}");
        Name = name;
        ClassNames = classNames;
        Width = width;
        Height = height;
        Channels = channels;
        _pixels = pixels;
        _labels = labels;
        _planar = planar && channels > 1;
    }

    public string Name { get; }
    public IReadOnlyList<string> ClassNames { get; }
    public int Count => _labels.Length;
    public int Width { get; }
    public int Height { get; }
    public int Channels { get; }

    public int GetLabel(int index) => _labels[index];

    public RawImage GetImage(int index)
    {
        this.CheckIndex(index);
        var source = _pixels.AsSpan(index * _imageBytes, _imageBytes);
        var image = new byte[_imageBytes];
        if (!_planar) source.CopyTo(image);
        else
        {
            var plane = Width * Height;
            for (var c = 0; c < Channels; c++)
                for (var p = 0; p < plane; p++)
                    image[p * Channels + c] = source[c * plane + p];
        }
        return new RawImage(Width, Height, Channels, image);
    }
}
