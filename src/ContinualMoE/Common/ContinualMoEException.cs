namespace ContinualMoE;

/// <summary>
/// An error the user can act on: bad input, a missing or corrupt file, an unknown name, a NaN loss.
/// The message is one line that names the problem and, where there is one, the file.
/// The CLI prints <see cref="Exception.Message"/> without a stack trace.
/// </summary>
public class ContinualMoEException : Exception
{
    public ContinualMoEException(string message, Exception? inner = null) : base(message, inner) { }

    /// <summary>An error about a file: the message starts with the file's path.</summary>
    public static ContinualMoEException ForFile(string path, string problem, Exception? inner = null) =>
        new($"{path}: {problem}", inner);
}
