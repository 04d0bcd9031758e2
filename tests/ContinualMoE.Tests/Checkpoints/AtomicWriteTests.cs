using ContinualMoE.Checkpoints;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Checkpoints;

/// <summary>Checkpoints (SafeTensorsFile.Write), plots (Plots.Save) and run files go through AtomicFile: a writer that
/// fails part-way (a full disk, a crash in the middle of serialising) leaves the previous file byte for byte and no
/// half-written or temporary file beside it.</summary>
public class AtomicWriteTests
{
    private sealed class FailAfterBytesStream(Stream inner, long limit) : Stream
    {
        private long written;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => written;
        public override long Position { get => written; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count)
        {
            var allowed = (int)Math.Min(count, limit - written);
            inner.Write(buffer, offset, allowed);
            written += allowed;
            if (allowed < count) throw new IOException("No space left on device (injected)");
        }
    }

    [Fact]
    public void AFailedCheckpointWriteLeavesThePreviousCheckpointIntact()
    {
        using var folder = new TempDirectory();
        var path = folder.File("learner.safetensors");
        SafeTensorsFile.Write(path, new Dictionary<string, Tensor> { ["w"] = arange(10, dtype: float32) });
        var before = File.ReadAllBytes(path);
        var replacement = new Dictionary<string, Tensor> { ["w"] = ones(1000), ["x"] = zeros(1000) };
        // The new checkpoint's bytes, written through a stream that fails half-way.
        var newBytes = folder.File("reference.safetensors");
        SafeTensorsFile.Write(newBytes, replacement);
        var content = File.ReadAllBytes(newBytes);
        File.Delete(newBytes);
        Assert.Throws<IOException>(() => AtomicFile.Write(path, stream => new FailAfterBytesStream(stream, content.Length / 2).Write(content, 0, content.Length)));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(arange(10, dtype: float32).data<float>().ToArray(), SafeTensorsFile.Read(path)["w"].data<float>().ToArray());
        Assert.Equal(["learner.safetensors"], Directory.GetFiles(folder.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AFailedPlotWriteLeavesThePreviousImageAndNoTemporaryFile()
    {
        using var folder = new TempDirectory();
        var path = folder.File("accuracy.png");
        byte[] png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3, 4];
        AtomicFile.WriteAllBytes(path, png);
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[4096]);
            throw new InvalidOperationException("the plot library failed (injected)");
        }));
        Assert.Equal(png, File.ReadAllBytes(path));
        Assert.Single(Directory.GetFiles(folder.Path));
    }

    [Fact]
    public void AFailedFirstWriteLeavesNoFileAtAll()
    {
        using var folder = new TempDirectory();
        var path = folder.File("metrics.json");
        Assert.Throws<IOException>(() => AtomicFile.Write(path, stream => new FailAfterBytesStream(stream, 3).Write(new byte[10], 0, 10)));
        Assert.Empty(Directory.GetFiles(folder.Path));
    }
}
